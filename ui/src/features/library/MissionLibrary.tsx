import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState, type KeyboardEvent, type Ref } from "react";
import type { AppError, LibraryQuery, RiskLevel, TemplateSummary } from "../../bindings";
import { formatRoi, plural, riskOf } from "../../format";
import { usePlatform } from "../../platform/context";
import { ErrorNotice } from "../../shared/ErrorNotice";
import { useDebouncedValue } from "../../shared/hooks";
import { SegmentedControl } from "../../shared/SegmentedControl";
import { useLoader } from "../../shared/useLoader";
import { SectorTree, type SectorSelection } from "./SectorTree";
import { useLibraryResults } from "./useLibraryResults";

export const SEARCH_DEBOUNCE_MS = 80;
const ROW_HEIGHT = 76;

type RiskChoice = "All" | RiskLevel;

interface Props {
  /** Quick Deploy on a template. */
  onDeploy: (template: TemplateSummary) => void;
  /** Lets the app focus the search box (Ctrl/Cmd+K). */
  searchRef?: Ref<HTMLInputElement>;
}

/** The template library: full-text search, sector tree, risk filter and a virtualized list. */
export function MissionLibrary({ onDeploy, searchRef }: Props) {
  const platform = usePlatform();
  const [text, setText] = useState("");
  const [selection, setSelection] = useState<SectorSelection>({ sector: null, category: null });
  const [risk, setRisk] = useState<RiskChoice>("All");
  const [reloadToken, setReloadToken] = useState(0);

  const debounced = useDebouncedValue(text.trim(), SEARCH_DEBOUNCE_MS);
  const queryText = debounced === "" ? null : debounced;
  const riskLevel = risk === "All" ? null : risk;

  const query = useMemo<LibraryQuery>(
    () => ({ text: queryText, sector: selection.sector, category: selection.category, risk: riskLevel }),
    [queryText, selection.sector, selection.category, riskLevel],
  );

  const { results, ensureRange, clearPageError } = useLibraryResults(platform, query, reloadToken);
  // Sector counts follow the text and risk but not the sector chosen, so the tree still offers every sector.
  const facets = useLoader(() => platform.libraryFacets(queryText, riskLevel), [platform, queryText, riskLevel, reloadToken]);

  useEffect(() => platform.onLibraryChanged(() => setReloadToken((n) => n + 1)), [platform]);

  // Startup metric: once, when the first page is on screen.
  const reported = useRef(false);
  useEffect(() => {
    if (!reported.current && results.status === "ready") {
      reported.current = true;
      platform.libraryRendered(results.firstPageCount);
    }
  }, [platform, results.status, results.firstPageCount]);

  function clearFilters() {
    setText("");
    setSelection({ sector: null, category: null });
    setRisk("All");
  }

  const filtered = queryText !== null || selection.sector !== null || riskLevel !== null;

  return (
    <div className="library">
      <aside className="library-side" aria-label="Filters">
        <h2 className="side-heading">Sectors</h2>
        {facets.error ? (
          <ErrorNotice error={facets.error} onRetry={() => setReloadToken((n) => n + 1)} />
        ) : (
          <SectorTree tree={facets.data} selection={selection} onSelect={setSelection} />
        )}
      </aside>
      <section className="library-main" aria-label="Missions">
        <div className="library-toolbar">
          <input
            ref={searchRef}
            type="search"
            className="search"
            data-testid="library-search"
            aria-label="Search missions"
            placeholder="Search missions (Ctrl+K)"
            value={text}
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Escape" && text !== "") {
                e.preventDefault();
                setText("");
              }
            }}
            autoComplete="off"
            spellCheck={false}
          />
          <SegmentedControl<RiskChoice>
            label="Risk level"
            testId="risk-filter"
            value={risk}
            onChange={setRisk}
            segments={[
              { value: "All", label: "All risks" },
              { value: "High", label: "High", className: "risk-high" },
              { value: "Medium", label: "Medium", className: "risk-medium" },
              { value: "Low", label: "Low", className: "risk-low" },
            ]}
          />
        </div>
        <div className="library-status" aria-live="polite">
          <span data-testid="result-count">
            {results.status === "error" ? "" : plural(results.total, "mission", "missions")}
          </span>
          {results.status === "loading" && <span className="muted"> · Searching…</span>}
          {filtered && (
            <button type="button" className="btn-link" onClick={clearFilters}>
              Clear filters
            </button>
          )}
        </div>
        {results.status === "error" && results.error ? (
          <ErrorNotice error={results.error} onRetry={() => setReloadToken((n) => n + 1)} />
        ) : results.status === "ready" && results.total === 0 ? (
          <div className="empty" data-testid="library-empty">
            <p>
              {queryText !== null ? (
                <>No mission matches “{queryText}”, try fewer words or clear the filters.</>
              ) : (
                <>No mission matches these filters, try fewer words or clear the filters.</>
              )}
            </p>
            <button type="button" className="btn" onClick={clearFilters}>
              Clear filters
            </button>
          </div>
        ) : (
          <ResultList
            key={results.generation}
            total={results.total}
            rows={results.rows}
            ensureRange={ensureRange}
            pageError={results.pageError}
            clearPageError={clearPageError}
            onDeploy={onDeploy}
          />
        )}
      </section>
    </div>
  );
}

interface ListProps {
  total: number;
  rows: ReadonlyArray<TemplateSummary | undefined>;
  ensureRange: (start: number, end: number) => void;
  pageError: AppError | null;
  clearPageError: () => void;
  onDeploy: (template: TemplateSummary) => void;
}

/** The virtualized result list; remounted (scrolled to top) for every new query. */
function ResultList({ total, rows, ensureRange, pageError, clearPageError, onDeploy }: ListProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [active, setActive] = useState(0);
  const [retry, setRetry] = useState(0);
  const pendingFocus = useRef<number | null>(null);

  const virtualizer = useVirtualizer({
    count: total,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? -1;

  useEffect(() => {
    if (last >= first) ensureRange(first, last);
  }, [first, last, ensureRange, retry]);

  // Move focus to a row once the virtualizer has rendered it.
  useEffect(() => {
    const index = pendingFocus.current;
    if (index === null) return;
    const el = scrollRef.current?.querySelector<HTMLElement>(`[data-index="${index}"]`);
    if (el) {
      pendingFocus.current = null;
      el.focus({ preventScroll: true });
    }
  });

  const activeIndex = Math.min(active, Math.max(total - 1, 0));

  function moveTo(index: number) {
    const target = Math.max(0, Math.min(total - 1, index));
    setActive(target);
    pendingFocus.current = target;
    virtualizer.scrollToIndex(target, { align: "auto" });
  }

  function onRowKeyDown(e: KeyboardEvent<HTMLDivElement>, index: number, template: TemplateSummary | undefined) {
    const page = Math.max(1, Math.floor((scrollRef.current?.clientHeight ?? ROW_HEIGHT * 8) / ROW_HEIGHT) - 1);
    let handled = true;
    switch (e.key) {
      case "ArrowDown":
        moveTo(index + 1);
        break;
      case "ArrowUp":
        moveTo(index - 1);
        break;
      case "PageDown":
        moveTo(index + page);
        break;
      case "PageUp":
        moveTo(index - page);
        break;
      case "Home":
        moveTo(0);
        break;
      case "End":
        moveTo(total - 1);
        break;
      case "Enter":
        // On the Quick Deploy button itself, the button's own click does it.
        if (e.target === e.currentTarget && template) onDeploy(template);
        else handled = false;
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  }

  return (
    <>
      {pageError && (
        <ErrorNotice
          error={pageError}
          onRetry={() => {
            clearPageError();
            setRetry((n) => n + 1);
          }}
        />
      )}
      <div ref={scrollRef} className="results" data-testid="template-list" tabIndex={-1}>
        <div role="list" aria-label="Mission templates" style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {items.map((item) => {
            const template = rows[item.index];
            return (
              <div
                key={item.key}
                role="listitem"
                data-index={item.index}
                aria-setsize={total}
                aria-posinset={item.index + 1}
                tabIndex={item.index === activeIndex ? 0 : -1}
                className="row"
                style={{ height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
                onFocus={(e) => {
                  if (e.target === e.currentTarget) setActive(item.index);
                }}
                onKeyDown={(e) => onRowKeyDown(e, item.index, template)}
                {...(template ? { "data-testid": "template-row", "data-template-id": template.id } : {})}
              >
                {template ? (
                  <TemplateRow template={template} tabbable={item.index === activeIndex} onDeploy={onDeploy} />
                ) : <div className="row-loading">Loading…</div>}
              </div>
            );
          })}
        </div>
      </div>
    </>
  );
}

interface RowProps {
  template: TemplateSummary;
  /** Only the active row's button is a tab stop, so Tab leaves a 10,000-row list in one step. */
  tabbable: boolean;
  onDeploy: (t: TemplateSummary) => void;
}

function TemplateRow({ template: t, tabbable, onDeploy }: RowProps) {
  const risk = riskOf(t);
  return (
    <>
      <div className="row-main">
        <div className="row-title">
          <span className="row-name">{t.name}</span>
          <span className="row-version">v{t.version}</span>
          {t.top_performance && <span className="badge badge-top">Top Performance</span>}
        </div>
        <div className="row-meta">
          <span>{t.sector_name}</span>
          <span aria-hidden="true"> · </span>
          <span>{t.category}</span>
          <span aria-hidden="true"> — </span>
          <span className="row-goal" title={t.goal}>
            {t.goal}
          </span>
        </div>
      </div>
      <div className="row-figures">
        <div className="figure">
          <span className="figure-label">Est. ROI</span>
          {t.est_roi === null ? (
            <span className="figure-value muted" title={t.history_note ?? "No finished runs recorded yet"}>
              No runs yet
            </span>
          ) : (
            <span className={`figure-value ${t.est_roi < 0 ? "roi-negative" : "roi-positive"}`} title={plural(t.runs, "run", "runs")}>
              {formatRoi(t.est_roi)}
            </span>
          )}
        </div>
        <div className="figure">
          <span className="figure-label">Risk Level</span>
          <span
            className={`figure-value risk risk-${risk.level.toLowerCase()} ${risk.fromHistory ? "" : "risk-baseline"}`}
            title={
              risk.fromHistory
                ? `From ${plural(t.runs, "finished run", "finished runs")}`
                : "The template's own rating; no finished runs yet"
            }
          >
            {risk.label}
          </span>
        </div>
        <button
          type="button"
          className="btn btn-primary"
          data-testid="quick-deploy"
          aria-label={`Quick Deploy ${t.name}`}
          tabIndex={tabbable ? 0 : -1}
          onClick={() => onDeploy(t)}
        >
          Quick Deploy
        </button>
      </div>
    </>
  );
}
