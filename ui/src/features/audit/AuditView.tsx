import { useEffect, useId, useMemo, useState } from "react";
import type { ActiveMission, AppError, AuditDecision, AuditEntry, AuditPage, SectorCount, VerifyReport } from "../../bindings";
import { toAppError } from "../../errors";
import { formatCents, formatCount, localTimeWithSeconds, plural, shortHash, shortId } from "../../format";
import { usePlatform } from "../../platform/context";
import { ErrorNotice } from "../../shared/ErrorNotice";
import { useLoader } from "../../shared/useLoader";

interface Props {
  /** The tab is on screen: the first time it is, the log and the filter choices load. */
  visible: boolean;
}

export const AUDIT_PAGE_SIZE = 100;

const DECISION_CLASS: Record<AuditDecision, string> = {
  Allowed: "decision-allowed",
  Approved: "decision-allowed",
  Waiting: "decision-waiting",
  Denied: "decision-denied",
  Rejected: "decision-denied",
  // The call was allowed and ran, but the tool failed: a refusal-coloured outcome.
  Failed: "decision-denied",
  // A repeat answered from the record of the call that ran: nothing ran again.
  Replayed: "decision-waiting",
};

/** Only these records stand for a tool that actually executed. */
function ran(decision: AuditDecision): boolean {
  return decision === "Allowed" || decision === "Failed";
}

const NO_MISSIONS: ActiveMission[] = [];
/** Missions offered in the filter at first; "More missions" adds the next ones. */
const MISSION_CHOICES = 100;
const NO_SECTORS: SectorCount[] = [];

/** `page` followed by the records of `older` it does not already hold. */
function appendOlder(page: AuditPage | null, older: AuditPage): AuditPage {
  const shown = page?.entries ?? [];
  const seen = new Set(shown.map((e) => e.seq));
  return { ...older, entries: [...shown, ...older.entries.filter((e) => !seen.has(e.seq))] };
}

type Verify =
  | { kind: "idle" }
  | { kind: "running" }
  | { kind: "done"; report: VerifyReport }
  | { kind: "error"; error: AppError };

/**
 * The audit log, newest first, filtered by mission and sector, paged backwards with
 * "Load older"; and a check of the whole chain and its signatures.
 */
export function AuditView({ visible }: Props) {
  const platform = usePlatform();
  const uid = useId();
  const [activated, setActivated] = useState(visible);
  const [missionId, setMissionId] = useState<string | null>(null);
  const [sector, setSector] = useState<string | null>(null);
  const [fullHashes, setFullHashes] = useState(false);
  const [verify, setVerify] = useState<Verify>({ kind: "idle" });

  useEffect(() => {
    if (visible) setActivated(true);
  }, [visible]);

  // The filters' choices; a retry shows no stale error while it runs.
  const choices = useLoader(
    async () => {
      const [m, tree] = await Promise.all([platform.listMissions(null, MISSION_CHOICES), platform.libraryFacets(null, null)]);
      return { missions: m.items, next: m.next, sectors: tree.sectors };
    },
    [platform],
    { enabled: activated, clearErrorOnStart: true },
  );
  const missions = choices.data?.missions ?? NO_MISSIONS;
  const moreMissions = choices.data?.next ?? null;

  function loadMoreMissions() {
    if (moreMissions === null || choices.loadingMore) return;
    choices.loadMore(
      () => platform.listMissions(moreMissions, MISSION_CHOICES),
      (data, page) => data && { ...data, missions: [...data.missions, ...page.items], next: page.next },
    );
  }
  const sectors = choices.data?.sectors ?? NO_SECTORS;

  // Rows of other filters must not stand under a failure to read these, hence `clearOnError`.
  // "Load older" pages are dropped once the filters change.
  const log = useLoader(
    () => platform.auditPage({ mission_id: missionId, sector, before_seq: null, limit: AUDIT_PAGE_SIZE }),
    [platform, missionId, sector],
    { enabled: activated, clearOnError: true },
  );
  const entries = log.data?.entries ?? null;
  const hasMore = log.data?.has_more ?? false;
  const loading = log.loading ? "first" : log.loadingMore ? "older" : null;
  const { error, moreError: olderError } = log;

  function loadOlder() {
    if (!entries || entries.length === 0 || loading) return;
    const oldest = Math.min(...entries.map((e) => e.seq));
    log.loadMore(() => platform.auditPage({ mission_id: missionId, sector, before_seq: oldest, limit: AUDIT_PAGE_SIZE }), appendOlder);
  }

  async function runVerify() {
    if (verify.kind === "running") return;
    setVerify({ kind: "running" });
    try {
      setVerify({ kind: "done", report: await platform.auditVerify() });
    } catch (e) {
      setVerify({ kind: "error", error: toAppError(e) });
    }
  }

  const missionNames = useMemo(() => new Map(missions.map((m) => [m.id, m.template_name])), [missions]);
  const sectorNames = useMemo(() => new Map(sectors.map((s) => [s.id, s.name])), [sectors]);
  const badSeq = verify.kind === "done" && !verify.report.ok ? (verify.report.first_bad?.seq ?? null) : null;

  return (
    <section className="audit" aria-labelledby="audit-title">
      <div className="section-head">
        <h2 id="audit-title">Audit log</h2>
        <span className="muted" aria-live="polite">
          {loading === "first" ? "Loading…" : entries ? `${plural(entries.length, "record", "records")} shown${hasMore ? ", older ones exist" : ""}` : ""}
        </span>
        <button type="button" className="btn" onClick={log.reload} disabled={loading !== null}>
          Refresh
        </button>
        <button type="button" className="btn btn-primary" data-testid="verify-log" onClick={runVerify} disabled={verify.kind === "running"}>
          {verify.kind === "running" ? "Verifying…" : "Verify log"}
        </button>
      </div>

      <VerifyResult verify={verify} onRetry={runVerify} />

      <div className="audit-toolbar">
        <label htmlFor={`${uid}-mission`}>Mission</label>
        <select
          id={`${uid}-mission`}
          className="select"
          data-testid="audit-mission"
          value={missionId ?? ""}
          onChange={(e) => setMissionId(e.target.value === "" ? null : e.target.value)}
        >
          <option value="">All missions</option>
          {missions.map((m) => (
            <option key={m.id} value={m.id}>
              {m.template_name} · {shortId(m.id)}
            </option>
          ))}
        </select>
        {moreMissions !== null && (
          <button type="button" className="btn" data-testid="audit-more-missions" onClick={loadMoreMissions} disabled={choices.loadingMore}>
            {choices.loadingMore ? "Loading…" : "More missions"}
          </button>
        )}
        <label htmlFor={`${uid}-sector`}>Sector</label>
        <select
          id={`${uid}-sector`}
          className="select"
          data-testid="audit-sector"
          value={sector ?? ""}
          onChange={(e) => setSector(e.target.value === "" ? null : e.target.value)}
        >
          <option value="">All sectors</option>
          {sectors.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
        <button
          type="button"
          className="btn"
          aria-pressed={fullHashes}
          data-testid="full-hashes"
          onClick={() => setFullHashes((on) => !on)}
        >
          Full hashes
        </button>
      </div>
      {choices.error && <ErrorNotice error={choices.error} onRetry={choices.reload} retryLabel="Reload filters" />}
      {choices.moreError && <ErrorNotice error={choices.moreError} onRetry={loadMoreMissions} />}
      {error && <ErrorNotice error={error} onRetry={log.reload} />}

      {entries && entries.length === 0 && !error && (
        <p className="empty" data-testid="audit-empty">
          {missionId !== null || sector !== null ? "No audit record matches these filters." : "The audit log is empty: no tool call has been made yet."}
        </p>
      )}
      {entries && entries.length > 0 && (
        <div className="table-scroll">
          <table className="table audit-table" data-testid="audit-table">
            <thead>
              <tr>
                <th scope="col" className="num">
                  #
                </th>
                <th scope="col">Time</th>
                <th scope="col">Mission</th>
                <th scope="col" className="num">
                  Dept
                </th>
                <th scope="col">Caller</th>
                <th scope="col">Tool or operation</th>
                <th scope="col">Decision</th>
                <th scope="col">Reason</th>
                <th scope="col">Authorized by</th>
                <th scope="col">Policies</th>
                <th scope="col" className="num">
                  Cost
                </th>
                <th scope="col">Executor</th>
                <th scope="col">Hash</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr
                  key={e.seq}
                  data-testid="audit-row"
                  data-seq={e.seq}
                  className={e.seq === badSeq ? "audit-bad" : undefined}
                  aria-invalid={e.seq === badSeq || undefined}
                >
                  <td className="num mono">{e.seq}</td>
                  <td title={e.ts}>{localTimeWithSeconds(e.ts)}</td>
                  <td className="mono" title={e.mission_id ? `${missionNames.get(e.mission_id) ?? "Mission"} ${e.mission_id}` : undefined}>
                    {e.mission_id ? shortId(e.mission_id) : <span className="muted">—</span>}
                  </td>
                  <td className="num">{e.dept ?? <span className="muted">—</span>}</td>
                  <td>{e.caller}</td>
                  <td className="mono" title={e.args_hash ? `arguments SHA-256 ${e.args_hash}` : e.action ?? undefined}>
                    {/* A tool call names its tool; any other change names its operation (mission.save, …). */}
                    {e.tool_id ?? e.action ?? <span className="muted">—</span>}
                  </td>
                  <td>
                    <span className={`decision ${DECISION_CLASS[e.decision]}`} data-testid="audit-decision">
                      {e.decision}
                    </span>
                  </td>
                  <td className="audit-reason">{e.reason}</td>
                  <td data-testid="audit-authorized">
                    <AuthorizedBy entry={e} sectorName={e.sector ? sectorNames.get(e.sector) : undefined} />
                  </td>
                  <td className="mono small">{e.policy_ids.length > 0 ? e.policy_ids.join(", ") : <span className="muted">—</span>}</td>
                  <td className="num">{formatCents(e.cost_cents)}</td>
                  <td>
                    {e.simulated ? (
                      <span className="badge badge-simulated" title="The result came from the built-in simulated executor" data-testid="simulated">
                        simulated
                      </span>
                    ) : ran(e.decision) ? (
                      <span className="muted small">live</span>
                    ) : (
                      <span className="muted" title="Nothing ran for this record">—</span>
                    )}
                  </td>
                  <td className="mono small audit-hash" title={`hash ${e.hash}\nprevious ${e.prev_hash}\nsigned by ${e.key_id}`}>
                    {fullHashes ? e.hash : shortHash(e.hash)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {olderError && <ErrorNotice error={olderError} />}
      {entries && hasMore && (
        <div className="audit-more">
          <button type="button" className="btn" data-testid="load-older" onClick={loadOlder} disabled={loading !== null}>
            {loading === "older" ? "Loading…" : `Load older (before #${Math.min(...entries.map((e) => e.seq))})`}
          </button>
        </div>
      )}
    </section>
  );
}

function AuthorizedBy({ entry, sectorName }: { entry: AuditEntry; sectorName: string | undefined }) {
  if (entry.sector === null && entry.grant === null) return <span className="muted">—</span>;
  // A refused call was authorized by nothing; its record names the sector that would have had to.
  if ((entry.decision === "Denied" || entry.decision === "Rejected") && entry.grant === null && entry.sector !== null) {
    return (
      <span className="muted" title={`sector ${entry.sector}`} data-testid="would-need">
        would need Sector {sectorName ?? entry.sector}
      </span>
    );
  }
  return (
    <>
      {entry.sector !== null && (
        <span title={`sector ${entry.sector}`}>
          Sector {sectorName ?? entry.sector}
        </span>
      )}
      {entry.sector !== null && entry.grant !== null && <br />}
      {entry.grant !== null && <span>{entry.grant}</span>}
    </>
  );
}

function VerifyResult({ verify, onRetry }: { verify: Verify; onRetry: () => void }) {
  if (verify.kind === "error") return <ErrorNotice error={verify.error} onRetry={onRetry} />;
  if (verify.kind !== "done") return null;
  const { report } = verify;
  const keys = (
    <>
      {report.keys.length > 0 && (
        <p className="small">
          {report.keys.length === 1 ? "Trusted key: " : "Trusted keys: "}
          {report.keys.map((k, i) => (
            <span key={k}>
              {i > 0 && ", "}
              <code>{k}</code>
            </span>
          ))}
        </p>
      )}
      {/* What the check trusted: keys pinned outside the database, never the database's own list. */}
      <p className="small" data-testid="verify-anchor">
        Checked against {report.anchor}.
      </p>
    </>
  );
  if (report.ok) {
    return (
      <div className="notice notice-success verify-result" role="status" data-testid="verify-result" data-ok="true">
        <p className="notice-title">Verified {formatCount(report.records)} records, chain and signatures intact</p>
        {keys}
      </div>
    );
  }
  return (
    <div className="notice notice-error verify-result" role="alert" data-testid="verify-result" data-ok="false">
      <p className="notice-title">
        {report.first_bad
          ? `Record #${report.first_bad.seq} is bad: ${report.first_bad.problem}`
          : `The audit log failed verification (${plural(report.records, "record", "records")} checked)`}
      </p>
      <p className="notice-next">
        <span className="notice-next-label">What to do: </span>
        Records were changed, deleted or reordered outside Mission Control. Keep a copy of the database as evidence and tell an admin; do not
        trust the log from the bad record on.
      </p>
      {keys}
    </div>
  );
}
