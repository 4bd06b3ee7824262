import { useEffect, useMemo, useRef, useState, type FocusEvent, type KeyboardEvent } from "react";
import type { SectorTree as SectorTreeData } from "../../bindings";
import { formatCount } from "../../format";

export interface SectorSelection {
  sector: string | null;
  category: string | null;
}

interface Props {
  tree: SectorTreeData | null;
  selection: SectorSelection;
  onSelect: (selection: SectorSelection) => void;
}

/** One visible row of the tree, in display order. */
interface Node {
  key: string;
  level: 1 | 2;
  sector: string | null;
  category: string | null;
  parentKey: string | null;
}

const ALL = "all";
const sectorKey = (id: string) => `s:${id}`;
const categoryKey = (id: string, name: string) => `c:${id}\u0000${name}`;

/** Sector → category tree with counts, keyboard-operable as an ARIA tree. */
export function SectorTree({ tree, selection, onSelect }: Props) {
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(() => new Set());
  const [focusKey, setFocusKey] = useState<string>(ALL);
  const refs = useRef(new Map<string, HTMLLIElement>());

  // The selected sector is always open, so its selected category is visible.
  useEffect(() => {
    const sector = selection.sector;
    if (sector !== null) setExpanded((prev) => (prev.has(sector) ? prev : new Set(prev).add(sector)));
  }, [selection.sector]);

  const selectedKey =
    selection.sector === null
      ? ALL
      : selection.category === null
        ? sectorKey(selection.sector)
        : categoryKey(selection.sector, selection.category);

  const nodes = useMemo(() => {
    const list: Node[] = [{ key: ALL, level: 1, sector: null, category: null, parentKey: null }];
    for (const s of tree?.sectors ?? []) {
      list.push({ key: sectorKey(s.id), level: 1, sector: s.id, category: null, parentKey: null });
      if (expanded.has(s.id)) {
        for (const c of s.categories) {
          list.push({ key: categoryKey(s.id, c.name), level: 2, sector: s.id, category: c.name, parentKey: sectorKey(s.id) });
        }
      }
    }
    return list;
  }, [tree, expanded]);

  // Keep the roving tab stop on a node that exists.
  const tabStop = nodes.some((n) => n.key === focusKey) ? focusKey : nodes.some((n) => n.key === selectedKey) ? selectedKey : ALL;

  function focusNode(key: string) {
    setFocusKey(key);
    refs.current.get(key)?.focus();
  }

  function toggle(sector: string, open?: boolean) {
    setExpanded((prev) => {
      const next = new Set(prev);
      const shouldOpen = open ?? !prev.has(sector);
      if (shouldOpen) next.add(sector);
      else next.delete(sector);
      return next;
    });
  }

  function select(node: Node) {
    setFocusKey(node.key);
    onSelect({ sector: node.sector, category: node.category });
  }

  function onKeyDown(e: KeyboardEvent<HTMLUListElement>) {
    const index = nodes.findIndex((n) => n.key === tabStop);
    const node = nodes[index];
    if (!node) return;
    let handled = true;
    switch (e.key) {
      case "ArrowDown": {
        const next = nodes[index + 1];
        if (next) focusNode(next.key);
        break;
      }
      case "ArrowUp": {
        const prev = nodes[index - 1];
        if (prev) focusNode(prev.key);
        break;
      }
      case "Home": {
        const first = nodes[0];
        if (first) focusNode(first.key);
        break;
      }
      case "End": {
        const last = nodes[nodes.length - 1];
        if (last) focusNode(last.key);
        break;
      }
      case "ArrowRight":
        if (node.level === 1 && node.sector !== null) {
          if (!expanded.has(node.sector)) toggle(node.sector, true);
          else {
            const child = nodes[index + 1];
            if (child && child.parentKey === node.key) focusNode(child.key);
          }
        }
        break;
      case "ArrowLeft":
        if (node.parentKey !== null) focusNode(node.parentKey);
        else if (node.sector !== null && expanded.has(node.sector)) toggle(node.sector, false);
        break;
      case "Enter":
      case " ":
        select(node);
        break;
      default:
        handled = false;
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }

  function itemProps(node: Node, label: string) {
    return {
      role: "treeitem",
      "aria-level": node.level,
      "aria-selected": node.key === selectedKey,
      "aria-label": label,
      tabIndex: node.key === tabStop ? 0 : -1,
      ref: (el: HTMLLIElement | null) => {
        if (el) refs.current.set(node.key, el);
        else refs.current.delete(node.key);
      },
      onFocus: (e: FocusEvent<HTMLLIElement>) => {
        // Focus bubbles from a category to its sector; only the focused item itself counts.
        if (e.target === e.currentTarget) setFocusKey(node.key);
      },
    } as const;
  }

  const allNode = nodes[0];
  const allLabel = `All sectors (${formatCount(tree?.total ?? 0)})`;

  return (
    <ul role="tree" aria-label="Sectors" className="tree" data-testid="sector-tree" onKeyDown={onKeyDown}>
      {allNode && (
        <li {...itemProps(allNode, allLabel)} className={`tree-item ${selectedKey === ALL ? "tree-selected" : ""}`}>
          <div className="tree-row" onClick={() => select(allNode)}>
            <span className="tree-twisty" aria-hidden="true" />
            <span className="tree-label">{allLabel}</span>
          </div>
        </li>
      )}
      {(tree?.sectors ?? []).map((s) => {
        const node: Node = { key: sectorKey(s.id), level: 1, sector: s.id, category: null, parentKey: null };
        const open = expanded.has(s.id);
        const label = `${s.name} (${formatCount(s.count)})`;
        return (
          <li
            key={node.key}
            {...itemProps(node, label)}
            aria-expanded={s.categories.length > 0 ? open : undefined}
            className={`tree-item ${node.key === selectedKey ? "tree-selected" : ""} ${s.count === 0 ? "tree-empty" : ""}`}
          >
            <div className="tree-row" onClick={() => select(node)}>
              <span
                className={`tree-twisty ${open ? "tree-open" : ""}`}
                aria-hidden="true"
                onClick={(e) => {
                  e.stopPropagation();
                  toggle(s.id);
                  focusNode(node.key);
                }}
              >
                {s.categories.length > 0 ? "▸" : ""}
              </span>
              <span className="tree-label">{label}</span>
            </div>
            {open && s.categories.length > 0 && (
              <ul role="group" className="tree-group">
                {s.categories.map((c) => {
                  const child: Node = {
                    key: categoryKey(s.id, c.name),
                    level: 2,
                    sector: s.id,
                    category: c.name,
                    parentKey: node.key,
                  };
                  const childLabel = `${c.name} (${formatCount(c.count)})`;
                  return (
                    <li
                      key={child.key}
                      {...itemProps(child, childLabel)}
                      className={`tree-item ${child.key === selectedKey ? "tree-selected" : ""} ${c.count === 0 ? "tree-empty" : ""}`}
                    >
                      <div
                        className="tree-row"
                        onClick={(e) => {
                          e.stopPropagation();
                          select(child);
                        }}
                      >
                        <span className="tree-label">{childLabel}</span>
                      </div>
                    </li>
                  );
                })}
              </ul>
            )}
          </li>
        );
      })}
    </ul>
  );
}
