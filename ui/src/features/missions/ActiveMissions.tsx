import { useCallback, useEffect, useId, useRef, useState, type KeyboardEvent, type MouseEvent } from "react";
import type { AppError, MissionStatus, MissionUsage, MissionView, RunRecord } from "../../bindings";
import { toAppError } from "../../errors";
import {
  describeApproval,
  formatCents,
  formatCount,
  formatCountdown,
  formatDuration,
  formatTtl,
  localTimeWithSeconds,
  plural,
  shortId,
} from "../../format";
import { usePlatform } from "../../platform/context";
import { ErrorNotice } from "../../shared/ErrorNotice";
import { useNow } from "../../shared/hooks";
import { Modal } from "../../shared/Modal";
import { appendPage, pagesShown, readPages } from "../../shared/paging";
import { useLoader } from "../../shared/useLoader";
import { MissionEvents } from "./MissionEvents";

interface Props {
  /** The tab is on screen: refresh whenever it becomes so, and follow changes only then. */
  visible: boolean;
  /** Bumped after a save, to refresh. */
  refreshToken: number;
}

/** Missions read per page; "Show older missions" adds the next page under them. */
export const MISSION_PAGE_SIZE = 50;

/** A squad reports often; the list reloads at most once per this gap (about four times a second). */
const RELOAD_GAP_MS = 250;
/** Less time left than this shows the countdown as urgent. */
const URGENT_MS = 5 * 60_000;

const LIVE: readonly MissionStatus[] = ["Running", "Paused"];
const ENDED: readonly MissionStatus[] = ["Completed", "Failed", "Expired", "Stopped"];

const isLive = (s: MissionStatus) => LIVE.includes(s);
const isEnded = (s: MissionStatus) => ENDED.includes(s);

/**
 * Every saved mission, live: what it has spent and used of its perimeter, how far its plan is,
 * how long it has left, and its run once it ended. Deploy and Stop go to the core, which
 * checks the mission's state again; selecting a mission follows its event stream.
 */
export function ActiveMissions({ visible, refreshToken }: Props) {
  const platform = usePlatform();
  const uid = useId();
  // Refresh asks again for both the missions and the Kafka status.
  const [manual, setManual] = useState(0);
  // A refresh reads again every page on screen (each page is one query in the core), so live
  // updates never drop the older missions someone asked to see.
  const shown = useRef(1);
  const missions = useLoader(
    () => readPages((after) => platform.missionViews(after, MISSION_PAGE_SIZE), shown.current),
    [platform, refreshToken, manual],
    { enabled: visible },
  );
  const { data: page, error, loading, setData: setPage, reloadQuietly, loadMore, loadingMore, moreError } = missions;
  const views = page?.items ?? null;
  shown.current = pagesShown(views?.length ?? 0, MISSION_PAGE_SIZE);
  // Either the status or why Kafka is unavailable, never both. Showing the tab asks again, so an
  // answer that comes back after it was hidden is not used.
  const kafka = useLoader(() => platform.kafkaStatus(), [platform, manual], {
    enabled: visible,
    clearOnError: true,
    dropWhenDisabled: true,
  });
  const [selectedId, setSelectedId] = useState<string | null>(null);
  // The row that holds the table's one tab stop (arrow keys move it).
  const [cursorId, setCursorId] = useState<string | null>(null);
  const [busyId, setBusyId] = useState<string | null>(null);
  const [actionError, setActionError] = useState<AppError | null>(null);
  const [stopId, setStopId] = useState<string | null>(null);
  const [announcement, setAnnouncement] = useState("");
  const [focusRowId, setFocusRowId] = useState<string | null>(null);
  const rowRefs = useRef(new Map<string, HTMLTableRowElement>());

  const reload = useCallback(() => setManual((n) => n + 1), []);

  // Trailing throttle: the first change schedules one reload, later ones until then ride on it.
  // These reloads follow the squads in the background: they must not flash "Refreshing…".
  useEffect(() => {
    if (!visible) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const off = platform.onMissionsChanged(() => {
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        reloadQuietly();
      }, RELOAD_GAP_MS);
    });
    return () => {
      off();
      if (timer !== null) clearTimeout(timer);
    };
  }, [platform, visible, reloadQuietly]);

  useEffect(() => {
    if (focusRowId === null) return;
    rowRefs.current.get(focusRowId)?.focus();
    setFocusRowId(null);
  }, [focusRowId]);

  const list = views ?? [];
  const selected = list.find((v) => v.mission.id === selectedId) ?? null;
  const stopping = list.find((v) => v.mission.id === stopId) ?? null;
  const tabStopId = list.some((v) => v.mission.id === cursorId) ? cursorId : (selected?.mission.id ?? list[0]?.mission.id ?? null);
  const liveCount = list.filter((v) => isLive(v.usage.status)).length;
  const ticking = visible && list.some((v) => isLive(v.usage.status) && v.usage.expires_at !== null);
  const now = useNow(ticking ? 1000 : null);

  const replace = useCallback(
    (updated: MissionView) => {
      setPage((prev) => prev && { ...prev, items: prev.items.map((v) => (v.mission.id === updated.mission.id ? updated : v)) });
    },
    [setPage],
  );

  function loadOlder() {
    const next = page?.next;
    if (!next || loadingMore) return;
    loadMore(() => platform.missionViews(next, MISSION_PAGE_SIZE), appendPage);
  }

  function select(id: string) {
    setSelectedId(id);
    setCursorId(id);
  }

  function failed(verb: string, view: MissionView, e: unknown) {
    const err = toAppError(e);
    setActionError({ ...err, message: `${verb} ${view.mission.template_name} ${shortId(view.mission.id)}: ${err.message}` });
    // The refusal usually means the list is out of date (someone else deployed or stopped it).
    reloadQuietly();
  }

  async function deploy(view: MissionView) {
    if (busyId !== null) return;
    const id = view.mission.id;
    setBusyId(id);
    setActionError(null);
    try {
      const deployed = await platform.deployMission(id);
      replace(deployed);
      // Deploying is when there is something to watch: follow its squad at once.
      select(id);
      setAnnouncement(`Deployed ${view.mission.template_name} ${shortId(id)}: ${deployed.usage.status}.`);
      setFocusRowId(id);
    } catch (e) {
      failed("Could not deploy", view, e);
    } finally {
      setBusyId(null);
    }
  }

  async function confirmStop(view: MissionView) {
    if (busyId !== null) return;
    const id = view.mission.id;
    setBusyId(id);
    setActionError(null);
    try {
      const stopped = await platform.stopMission(id);
      replace(stopped);
      setAnnouncement(`Stopped ${view.mission.template_name} ${shortId(id)}.`);
      // The Stop button is gone now; the row keeps the keyboard user's place.
      setFocusRowId(id);
    } catch (e) {
      failed("Could not stop", view, e);
    } finally {
      setBusyId(null);
      setStopId(null);
    }
  }

  function onRowKeyDown(e: KeyboardEvent<HTMLTableRowElement>, index: number, id: string) {
    // Keys pressed on the row's buttons belong to the buttons.
    if (e.target !== e.currentTarget) return;
    let next: number;
    switch (e.key) {
      case "ArrowDown":
        next = Math.min(index + 1, list.length - 1);
        break;
      case "ArrowUp":
        next = Math.max(index - 1, 0);
        break;
      case "Home":
        next = 0;
        break;
      case "End":
        next = list.length - 1;
        break;
      case "Enter":
      case " ":
        e.preventDefault();
        select(id);
        return;
      default:
        return;
    }
    e.preventDefault();
    const target = list[next];
    if (!target) return;
    setCursorId(target.mission.id);
    rowRefs.current.get(target.mission.id)?.focus();
  }

  function onRowClick(e: MouseEvent<HTMLTableRowElement>, id: string) {
    // A press on Deploy or Stop is not a selection.
    if (e.target instanceof Element && e.target.closest("button, a, input")) return;
    select(id);
  }

  const hintId = `${uid}-hint`;

  return (
    <section className="missions" aria-labelledby="missions-title">
      <div className="section-head">
        <h2 id="missions-title">Active missions</h2>
        <span className="muted" aria-live="polite">
          {loading
            ? "Refreshing…"
            : views
              ? `${plural(list.length, "mission", "missions")}${page?.next ? " shown" : ""}${liveCount > 0 ? ` · ${formatCount(liveCount)} live` : ""}`
              : ""}
        </span>
        <button type="button" className="btn" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      <p className="visually-hidden" role="status" data-testid="missions-announcement">
        {announcement}
      </p>

      {kafka.data && (
        <p className="kafka-line" data-testid="kafka-mode" title={`Bootstrap servers: ${kafka.data.bootstrap_servers}`}>
          <span className={`kafka-dot ${kafka.data.embedded ? "kafka-embedded" : "kafka-brokers"}`} aria-hidden="true" />
          Kafka: {kafka.data.mode}
        </p>
      )}
      {kafka.error && (
        <div data-testid="kafka-warning">
          <ErrorNotice error={kafka.error} onRetry={reload} retryLabel="Check again" />
        </div>
      )}

      {error && <ErrorNotice error={error} onRetry={reload} />}
      {actionError && (
        <div data-testid="action-error">
          <ErrorNotice error={actionError} onRetry={() => setActionError(null)} retryLabel="Dismiss" />
        </div>
      )}
      {views === null && !error && (
        <p className="muted" role="status">
          Loading missions…
        </p>
      )}
      {views && list.length === 0 && !error && (
        <p className="empty">No mission saved yet. Pick a template in the Library and press Quick Deploy.</p>
      )}
      {list.length > 0 && (
        <>
          <div className={`table-scroll missions-scroll ${selected ? "missions-scroll-split" : ""}`}>
            <table className="table missions-table" data-testid="active-missions" aria-describedby={hintId}>
              <thead>
                <tr>
                  <th scope="col">Mission</th>
                  <th scope="col">Template</th>
                  <th scope="col">Status</th>
                  <th scope="col">Spend</th>
                  <th scope="col">Steps</th>
                  <th scope="col">Plan</th>
                  <th scope="col" className="num">
                    Time left
                  </th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((view, index) => {
                  const m = view.mission;
                  const status = view.usage.status;
                  const isSelected = m.id === selectedId;
                  return (
                    <MissionRows
                      key={m.id}
                      view={view}
                      now={now}
                      selected={isSelected}
                      tabStop={m.id === tabStopId}
                      busy={busyId === m.id}
                      anyBusy={busyId !== null}
                      rowRef={(el) => {
                        if (el) rowRefs.current.set(m.id, el);
                        else rowRefs.current.delete(m.id);
                      }}
                      onKeyDown={(e) => onRowKeyDown(e, index, m.id)}
                      onClick={(e) => onRowClick(e, m.id)}
                      onFocus={() => setCursorId(m.id)}
                      onDeploy={() => void deploy(view)}
                      onStop={() => {
                        if (isLive(status)) setStopId(m.id);
                      }}
                    />
                  );
                })}
              </tbody>
            </table>
          </div>
          <p id={hintId} className="muted small missions-hint">
            Select a mission to follow its events: click its row, or move with <kbd>↑</kbd> <kbd>↓</kbd> and press <kbd>Enter</kbd>.
          </p>
        </>
      )}
      {moreError && <ErrorNotice error={moreError} onRetry={loadOlder} />}
      {page?.next && (
        <p className="load-more">
          <button type="button" className="btn" data-testid="older-missions" onClick={loadOlder} disabled={loadingMore}>
            {loadingMore ? "Loading…" : "Show older missions"}
          </button>
        </p>
      )}

      {selected && (
        <MissionEvents
          key={selected.mission.id}
          view={selected}
          visible={visible}
          live={isLive(selected.usage.status)}
          onClose={() => {
            const id = selected.mission.id;
            setSelectedId(null);
            setFocusRowId(id);
          }}
        />
      )}

      {stopping && <StopDialog view={stopping} busy={busyId !== null} onCancel={() => setStopId(null)} onConfirm={() => void confirmStop(stopping)} />}
    </section>
  );
}

interface RowProps {
  view: MissionView;
  now: number;
  selected: boolean;
  tabStop: boolean;
  /** This mission's deploy or stop is on its way. */
  busy: boolean;
  /** Some mission's is: one action at a time. */
  anyBusy: boolean;
  rowRef: (el: HTMLTableRowElement | null) => void;
  onKeyDown: (e: KeyboardEvent<HTMLTableRowElement>) => void;
  onClick: (e: MouseEvent<HTMLTableRowElement>) => void;
  onFocus: () => void;
  onDeploy: () => void;
  onStop: () => void;
}

/** One mission's row, and under it the run record once the mission has ended. */
function MissionRows({ view, now, selected, tabStop, busy, anyBusy, rowRef, onKeyDown, onClick, onFocus, onDeploy, onStop }: RowProps) {
  const m = view.mission;
  const u = view.usage;
  const status = u.status;
  const short = shortId(m.id);
  const left = timeLeft(u, now);
  const spendText = `${formatCents(u.spent_cents)} of ${formatCents(u.budget_cents)}`;

  return (
    <>
      <tr
        ref={rowRef}
        className={`mission-row ${selected ? "mission-selected" : ""}`}
        tabIndex={tabStop ? 0 : -1}
        aria-selected={selected}
        data-testid="mission-row"
        data-mission-id={m.id}
        data-status={status}
        onKeyDown={onKeyDown}
        onClick={onClick}
        onFocus={(e) => {
          if (e.target === e.currentTarget) onFocus();
        }}
      >
        <td className="mono" title={m.id}>
          {short}
        </td>
        <td>
          {m.template_name} <span className="muted">v{m.template_version}</span>
          <div className="muted small">
            {describeApproval(m.perimeter.approval_mode, m.perimeter.threshold_cents)}
            {m.connections.length > 0 && <> · connects {m.connections.join(", ")}</>}
          </div>
        </td>
        <td>
          <span className={`status status-${status.toLowerCase()}`} data-testid="mission-status">
            {status}
          </span>
          {status === "Paused" && <div className="muted small">at its budget cap: see Approvals</div>}
        </td>
        <td data-testid="mission-spend">
          <Meter label={`Spend of mission ${short}`} value={u.spent_cents} max={u.budget_cents} text={spendText} />
          {u.reserved_cents > 0 && <div className="muted small">+{formatCents(u.reserved_cents)} held by calls in flight</div>}
        </td>
        <td data-testid="mission-steps">
          <Meter
            label={`Steps of mission ${short}`}
            value={u.steps_used}
            max={u.max_steps}
            text={`${formatCount(u.steps_used)} of ${formatCount(u.max_steps)}`}
          />
        </td>
        <td data-testid="mission-plan">
          {view.plan_steps > 0 ? (
            <Meter
              label={`Plan progress of mission ${short}`}
              value={view.steps_done}
              max={view.plan_steps}
              text={`${formatCount(view.steps_done)} of ${plural(view.plan_steps, "step", "steps")}`}
              plain
            />
          ) : (
            <span className="muted">—</span>
          )}
        </td>
        <td className="num">
          <span className={`countdown countdown-${left.tone}`} data-testid="time-left" title={left.title}>
            {left.text}
          </span>
          {status === "Ready" && <div className="muted small">TTL {formatTtl(u.ttl_seconds)}</div>}
        </td>
        <td className="mission-actions">
          {status === "Ready" && (
            <button
              type="button"
              className="btn btn-primary"
              data-testid="deploy-mission"
              disabled={anyBusy}
              onClick={onDeploy}
            >
              {busy ? "Deploying…" : "Deploy"}
              <span className="visually-hidden">
                {" "}
                {m.template_name} {short}
              </span>
            </button>
          )}
          {isLive(status) && (
            <button
              type="button"
              className="btn btn-danger"
              data-testid="stop-mission"
              disabled={anyBusy}
              onClick={onStop}
            >
              {busy ? "Stopping…" : "Stop"}
              <span className="visually-hidden">
                {" "}
                {m.template_name} {short}
              </span>
            </button>
          )}
        </td>
      </tr>
      {isEnded(status) && view.run && <RunRow run={view.run} missionId={m.id} />}
    </>
  );
}

function RunRow({ run, missionId }: { run: RunRecord; missionId: string }) {
  return (
    <tr className="run-row" data-testid="run-record" data-mission-id={missionId}>
      <td colSpan={8}>
        <dl className="run-facts" aria-label={`Run of mission ${shortId(missionId)}`}>
          <div>
            <dt>Run</dt>
            <dd>
              <span className={`status status-${run.status.toLowerCase()}`}>{run.status}</span>
            </dd>
          </div>
          <div>
            <dt>Profit</dt>
            <dd className={run.profit_cents > 0 ? "roi-positive" : run.profit_cents < 0 ? "roi-negative" : undefined} data-testid="run-profit">
              {formatCents(run.profit_cents)}
            </dd>
          </div>
          <div>
            <dt>Gas</dt>
            <dd data-testid="run-gas">{formatCents(run.gas_cents)}</dd>
          </div>
          <div>
            <dt>Steps</dt>
            <dd data-testid="run-steps">{formatCount(run.steps)}</dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd data-testid="run-duration">{formatDuration(run.duration_ms)}</dd>
          </div>
          {run.failure_reason && (
            <div className="run-failure">
              <dt>Failure reason</dt>
              <dd data-testid="failure-reason">{run.failure_reason}</dd>
            </div>
          )}
        </dl>
      </td>
    </tr>
  );
}

interface MeterProps {
  label: string;
  value: number;
  max: number;
  text: string;
  /** Progress rather than consumption: a full bar is good news, not a warning. */
  plain?: boolean;
}

/** A figure with a bar. The bar carries the figure for screen readers; the visible text is for the eye only. */
function Meter({ label, value, max, text, plain = false }: MeterProps) {
  const ratio = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const tone = plain ? "meter-plain" : ratio >= 0.9 ? "meter-high" : ratio >= 0.75 ? "meter-medium" : "";
  return (
    <div className="meter-cell">
      <span className="meter-text" aria-hidden="true">
        {text}
      </span>
      <div
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={Math.max(max, 0)}
        aria-valuenow={Math.min(Math.max(value, 0), Math.max(max, 0))}
        aria-valuetext={text}
        className={`meter ${tone}`}
      >
        <div className="meter-fill" style={{ width: `${ratio * 100}%` }} />
      </div>
    </div>
  );
}

function timeLeft(u: MissionUsage, now: number): { text: string; title: string | undefined; tone: "idle" | "live" | "urgent" | "ended" } {
  if (isEnded(u.status)) return { text: "ended", title: undefined, tone: "ended" };
  if (u.expires_at === null) return { text: "—", title: "Not started: the clock starts when the mission is deployed", tone: "idle" };
  const ms = Date.parse(u.expires_at) - now;
  const title = `Ends ${localTimeWithSeconds(u.expires_at)}`;
  // The core expires the mission on its next check; until then say so rather than count below zero.
  if (ms <= 0) return { text: "time up", title, tone: "urgent" };
  return { text: formatCountdown(ms), title, tone: ms < URGENT_MS ? "urgent" : "live" };
}

interface StopProps {
  view: MissionView;
  busy: boolean;
  onCancel: () => void;
  onConfirm: () => void;
}

/** Stopping cannot be undone, so it is confirmed in a dialog whose safe choice has the focus. */
function StopDialog({ view, busy, onCancel, onConfirm }: StopProps) {
  const uid = useId();
  const titleId = `${uid}-title`;
  const descId = `${uid}-desc`;
  const m = view.mission;
  return (
    <Modal labelledBy={titleId} describedBy={descId} onEscape={onCancel} testId="confirm-stop" className="confirm-modal">
      <h2 id={titleId}>
        Stop {m.template_name} {shortId(m.id)}?
      </h2>
      <p id={descId}>
        Its squad is torn down now and its run is recorded as Stopped, with {formatCents(view.usage.spent_cents)} spent and{" "}
        {plural(view.usage.steps_used, "step", "steps")} used. A stopped mission cannot be resumed.
      </p>
      <div className="modal-actions">
        <button type="button" className="btn" data-autofocus onClick={onCancel}>
          Cancel
        </button>
        <button type="button" className="btn btn-danger" data-testid="confirm-stop-mission" disabled={busy} onClick={onConfirm}>
          {busy ? "Stopping…" : "Yes, stop mission"}
        </button>
      </div>
    </Modal>
  );
}
