/** A page of a newest-first list, as the core hands it out: its rows and the next page's cursor. */
export interface Paged<T> {
  items: T[];
  next: string | null;
}

/**
 * Reads the first `pages` pages of a list, following each page's cursor, as one page. A list that
 * refreshes while older pages are on screen reads them all again, so a live update never drops
 * the rows someone scrolled to.
 */
export async function readPages<T, P extends Paged<T>>(fetch: (after: string | null) => Promise<P>, pages: number): Promise<P> {
  let page = await fetch(null);
  const items = [...page.items];
  for (let n = 1; n < pages && page.next !== null; n++) {
    page = await fetch(page.next);
    items.push(...page.items);
  }
  return { ...page, items };
}

/** An older page added under the rows already shown; the newest page's other fields win. */
export function appendPage<T, P extends Paged<T>>(shown: P | null, older: P): P | null {
  return shown && { ...older, items: [...shown.items, ...older.items] };
}

/** How many pages of `size` the rows shown came from (at least one). */
export function pagesShown(rows: number, size: number): number {
  return Math.max(1, Math.ceil(rows / size));
}
