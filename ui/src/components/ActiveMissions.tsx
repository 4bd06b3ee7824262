import { useEffect, useRef, useState } from "react";
import type { ActiveMission, AppError } from "../bindings";
import { toAppError } from "../errors";
import { describeApproval, formatCents, formatTtl, formatCount, localTime, plural, shortId } from "../format";
import { usePlatform } from "../platform/context";
import { ErrorNotice } from "./ErrorNotice";

interface Props {
  /** The tab is on screen: refresh whenever it becomes so. */
  visible: boolean;
  /** Bumped after a save, to refresh. */
  refreshToken: number;
}

/** Every saved mission with its pinned template version and perimeter. */
export function ActiveMissions({ visible, refreshToken }: Props) {
  const platform = usePlatform();
  const [missions, setMissions] = useState<ActiveMission[] | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [loading, setLoading] = useState(false);
  const [manual, setManual] = useState(0);
  const seq = useRef(0);

  useEffect(() => {
    if (!visible) return;
    const mine = ++seq.current;
    setLoading(true);
    platform.listMissions().then(
      (list) => {
        if (mine !== seq.current) return;
        setMissions(list);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (mine !== seq.current) return;
        setError(toAppError(e));
        setLoading(false);
      },
    );
  }, [platform, visible, refreshToken, manual]);

  return (
    <section className="missions" aria-labelledby="missions-title">
      <div className="section-head">
        <h2 id="missions-title">Active missions</h2>
        <span className="muted" aria-live="polite">
          {loading ? "Refreshing…" : missions ? plural(missions.length, "mission", "missions") : ""}
        </span>
        <button type="button" className="btn" onClick={() => setManual((n) => n + 1)} disabled={loading}>
          Refresh
        </button>
      </div>
      {error && <ErrorNotice error={error} onRetry={() => setManual((n) => n + 1)} />}
      {missions && missions.length === 0 && !error && (
        <p className="empty">No mission saved yet. Pick a template in the Library and press Quick Deploy.</p>
      )}
      {missions && missions.length > 0 && (
        <div className="table-scroll">
          <table className="table" data-testid="active-missions">
            <thead>
              <tr>
                <th scope="col">Mission</th>
                <th scope="col">Template</th>
                <th scope="col" className="num">
                  Budget
                </th>
                <th scope="col" className="num">
                  TTL
                </th>
                <th scope="col" className="num">
                  Max steps
                </th>
                <th scope="col">Approval</th>
                <th scope="col">Connections</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {missions.map((m) => (
                <tr key={m.id} data-testid="mission-row" data-mission-id={m.id}>
                  <td className="mono" title={m.id}>
                    {shortId(m.id)}
                  </td>
                  <td>
                    {m.template_name} <span className="muted">v{m.template_version}</span>
                  </td>
                  <td className="num">{formatCents(m.perimeter.budget_cents)}</td>
                  <td className="num">{formatTtl(m.perimeter.ttl_seconds)}</td>
                  <td className="num">{formatCount(m.perimeter.max_steps)}</td>
                  <td>{describeApproval(m.perimeter.approval_mode, m.perimeter.threshold_cents)}</td>
                  <td>{m.connections.length > 0 ? m.connections.join(", ") : <span className="muted">None</span>}</td>
                  <td>
                    <span className={`status status-${m.status.toLowerCase()}`}>{m.status}</span>
                  </td>
                  <td title={m.created_at}>{localTime(m.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
