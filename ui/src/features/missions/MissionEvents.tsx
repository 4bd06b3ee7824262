import { useCallback, useEffect, useId, useLayoutEffect, useRef, useState } from "react";
import type { AppError, MissionEvent, MissionView } from "../../bindings";
import { toAppError } from "../../errors";
import { localTimeWithSeconds, plural, shortId } from "../../format";
import { usePlatform } from "../../platform/context";
import { ErrorNotice } from "../../shared/ErrorNotice";

/** The most events the core returns at once; a full page means more may follow. */
export const EVENT_PAGE = 500;
/** How often a live mission's events are asked for when no missions-changed event came. */
export const EVENT_POLL_MS = 2000;
/** Closer than this to the bottom counts as "at the newest" (rounding, a last partial row). */
const PINNED_SLACK_PX = 24;

/**
 * Where to resume reading. Normally after the last event seen; while some shown events still
 * wait in the outbox, from just before the oldest of them, so their marker clears once Kafka
 * has them. That re-read is bounded to the last page's worth of sequence numbers, so a long
 * broker outage does not make every refresh re-read the whole history.
 */
export function resumeAfter(events: MissionEvent[]): number {
  const last = events[events.length - 1]?.seq ?? 0;
  const waiting = events.find((e) => !e.published);
  return waiting ? Math.max(waiting.seq - 1, last - EVENT_PAGE) : last;
}

/** `known` with `page` applied: newer events appended, re-read ones replaced, ordered by seq. */
export function mergeEvents(known: MissionEvent[], page: MissionEvent[]): MissionEvent[] {
  const first = page[0];
  if (!first) return known;
  const last = known[known.length - 1]?.seq ?? 0;
  if (first.seq > last) return [...known, ...page];
  const bySeq = new Map(known.map((e) => [e.seq, e]));
  for (const e of page) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/**
 * A mission's events, read incrementally: everything once, then only what is newer whenever
 * the mission changes (and every few seconds while `poll`, in case an event was missed).
 * Reads never overlap: a request made during one runs once it ends.
 */
function useEventStream(missionId: string, visible: boolean, poll: boolean) {
  const platform = usePlatform();
  const [events, setEvents] = useState<MissionEvent[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const known = useRef<MissionEvent[]>([]);
  const busy = useRef(false);
  const again = useRef(false);
  const mounted = useRef(true);

  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const pull = useCallback(async () => {
    if (busy.current) {
      again.current = true;
      return;
    }
    busy.current = true;
    try {
      do {
        again.current = false;
        let after = resumeAfter(known.current);
        for (;;) {
          const page = await platform.missionEvents(missionId, after);
          if (!mounted.current) return;
          known.current = mergeEvents(known.current, page);
          setEvents(known.current);
          const last = page[page.length - 1];
          if (page.length < EVENT_PAGE || !last) break;
          after = last.seq;
        }
        setError(null);
      } while (again.current);
    } catch (e) {
      if (mounted.current) setError(toAppError(e));
    } finally {
      busy.current = false;
      if (mounted.current) setLoaded(true);
    }
  }, [platform, missionId]);

  // Hidden, nothing is followed; becoming visible catches up.
  useEffect(() => {
    if (visible) void pull();
  }, [visible, pull]);

  useEffect(() => {
    if (!visible) return;
    return platform.onMissionsChanged((id) => {
      if (id === missionId) void pull();
    });
  }, [platform, visible, missionId, pull]);

  const waiting = events.some((e) => !e.published);
  const polling = visible && (poll || waiting);
  useEffect(() => {
    if (!polling) return;
    const timer = setInterval(() => void pull(), EVENT_POLL_MS);
    return () => clearInterval(timer);
  }, [polling, pull]);

  return { events, loaded, error, retry: pull };
}

function kindTone(kind: string): string {
  if (kind.endsWith("failed") || kind.endsWith("refused")) return "kind-bad";
  if (kind.endsWith("waiting")) return "kind-wait";
  if (kind.endsWith("result")) return "kind-ok";
  return "kind-info";
}

interface Props {
  view: MissionView;
  visible: boolean;
  /** The mission may still produce events: poll as a fallback to the change events. */
  live: boolean;
  onClose: () => void;
}

/** The selected mission's event history, oldest first, kept scrolled to the newest unless the person scrolled up. */
export function MissionEvents({ view, visible, live, onClose }: Props) {
  const missionId = view.mission.id;
  const uid = useId();
  const titleId = `${uid}-title`;
  const { events, loaded, error, retry } = useEventStream(missionId, visible, live);
  const scrollRef = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const waiting = events.filter((e) => !e.published).length;

  function onScroll() {
    const el = scrollRef.current;
    if (!el) return;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight <= PINNED_SLACK_PX;
  }

  // Before paint, so the list never shows a frame at the old position.
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (el && pinned.current && visible) el.scrollTop = el.scrollHeight;
  }, [events, visible]);

  const name = `${view.mission.template_name} ${shortId(missionId)}`;

  return (
    <section className="events-panel" data-testid="mission-events" data-mission-id={missionId} aria-labelledby={titleId}>
      <div className="section-head">
        <h3 id={titleId} className="events-title">
          Events of {view.mission.template_name}{" "}
          <span className="mono muted" title={missionId}>
            {shortId(missionId)}
          </span>
        </h3>
        <span className="muted" aria-live="polite" data-testid="event-count">
          {loaded ? plural(events.length, "event", "events") : ""}
        </span>
        <button type="button" className="btn" onClick={onClose}>
          Close events
        </button>
      </div>
      {waiting > 0 && (
        <p className="notice notice-warning outbox-note" data-testid="outbox-note">
          <strong>{plural(waiting, "event waits", "events wait")} in the outbox.</strong> Kafka has not taken{" "}
          {waiting === 1 ? "it" : "them"} yet, so the squad has not seen {waiting === 1 ? "it" : "them"}. Nothing is lost: they
          are sent in order as soon as the broker answers. If this lasts, check the Kafka settings.
        </p>
      )}
      {error && <ErrorNotice error={error} onRetry={() => void retry()} />}
      {!loaded && !error && (
        <p className="muted" role="status">
          Loading events…
        </p>
      )}
      {loaded && events.length === 0 && !error && (
        <p className="empty" data-testid="events-empty">
          {view.usage.status === "Ready"
            ? "No events yet. Deploy the mission to assemble its squad; its events appear here as they happen."
            : "No events yet. They appear here as the squad works."}
        </p>
      )}
      {events.length > 0 && (
        <div ref={scrollRef} className="table-scroll events-scroll" tabIndex={0} role="region" aria-label={`Events of ${name}, oldest first`} onScroll={onScroll}>
          <table className="table events-table">
            <thead>
              <tr>
                <th scope="col" className="num">
                  Seq
                </th>
                <th scope="col">Time</th>
                <th scope="col">Kind</th>
                <th scope="col" className="num">
                  Dept
                </th>
                <th scope="col">Job</th>
                <th scope="col">Mission</th>
                <th scope="col">Summary</th>
                <th scope="col">Kafka</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr
                  key={e.seq}
                  className={e.published ? undefined : "event-unpublished"}
                  data-testid="event-row"
                  data-seq={e.seq}
                  data-kind={e.kind}
                  data-job-id={e.job_id}
                >
                  <td className="num mono">{e.seq}</td>
                  {/* With seconds: events a second apart must read apart. */}
                  <td className="nowrap" title={e.ts}>
                    {localTimeWithSeconds(e.ts)}
                  </td>
                  <td>
                    <span className={`event-kind ${kindTone(e.kind)}`}>{e.kind}</span>
                  </td>
                  <td className="num">{e.dept}</td>
                  <td className="mono" title={e.job_id} data-testid="event-job">
                    {shortId(e.job_id)}
                  </td>
                  <td className="mono" title={e.mission_id} data-testid="event-mission">
                    {shortId(e.mission_id)}
                  </td>
                  <td className="event-summary">{e.summary}</td>
                  <td className="nowrap">
                    {e.published ? (
                      <span className="muted">sent</span>
                    ) : (
                      <span
                        className="outbox-badge"
                        data-testid="in-outbox"
                        title="Written, but still waiting in the outbox for Kafka; it is sent when the broker answers."
                      >
                        in outbox
                      </span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
