import { useCallback, useEffect, useId, useMemo, useRef, useState, type FormEvent, type KeyboardEvent, type Ref } from "react";
import type { AppError, ApprovalDecision, ApprovalItem } from "../../bindings";
import { toAppError } from "../../errors";
import { formatCents, formatCountdown, indentJson, localTime, plural, shortHash } from "../../format";
import { usePlatform } from "../../platform/context";
import { ErrorNotice } from "../../shared/ErrorNotice";
import { useNow } from "../../shared/hooks";
import { appendPage, pagesShown, readPages } from "../../shared/paging";
import { useLoader } from "../../shared/useLoader";

interface Props {
  /** The tab is on screen: load when it becomes so, and follow changes only then. */
  visible: boolean;
}

/** Where focus goes once the list shows a decision: the next item to decide, or the heading. */
type FocusTarget = { kind: "card"; id: string } | { kind: "heading" };

const isPending = (a: ApprovalItem) => a.status === "Pending";

function isExpired(item: ApprovalItem, now: number): boolean {
  if (item.status === "Expired") return true;
  if (item.status !== "Pending" || item.expires_at === null) return false;
  return Date.parse(item.expires_at) <= now;
}

/** Requests read per page; the button under the list adds the next page. */
export const APPROVAL_PAGE_SIZE = 50;

/**
 * Tool calls held for a human and missions paused at their budget. Every decision goes to the
 * core, which checks it again; this view only makes the choice clear and hard to slip on.
 */
export function ApprovalsView({ visible }: Props) {
  const platform = usePlatform();
  const [showDecided, setShowDecided] = useState(false);
  // A refresh reads again every page on screen, so a decision elsewhere never drops the older
  // requests someone asked to see.
  const shown = useRef(1);
  const approvals = useLoader(
    () => readPages((after) => platform.listApprovals(!showDecided, after, APPROVAL_PAGE_SIZE), shown.current),
    [platform, showDecided],
    { enabled: visible },
  );
  const { data: page, error, loading, reload, setData: setPage, loadMore, loadingMore, moreError } = approvals;
  const items = page?.items ?? null;
  shown.current = pagesShown(items?.length ?? 0, APPROVAL_PAGE_SIZE);
  const [announcement, setAnnouncement] = useState("");
  const [focusTarget, setFocusTarget] = useState<FocusTarget | null>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const cardRefs = useRef(new Map<string, HTMLElement>());

  // While hidden, changes are not followed: becoming visible loads afresh anyway.
  useEffect(() => {
    if (!visible) return;
    return platform.onApprovalsChanged(reload);
  }, [platform, visible, reload]);

  // Pending first; the core's order otherwise (the sort is stable).
  const ordered = useMemo(() => (items ? [...items].sort((a, b) => Number(isPending(b)) - Number(isPending(a))) : null), [items]);
  // Exact, counted by the core, however many pages are on screen.
  const pendingCount = page?.pending ?? 0;
  const ticking = visible && (ordered?.some((a) => isPending(a) && a.expires_at !== null) ?? false);
  const now = useNow(ticking ? 1000 : null);

  function loadOlder() {
    const next = page?.next;
    if (!next || loadingMore) return;
    loadMore(() => platform.listApprovals(!showDecided, next, APPROVAL_PAGE_SIZE), appendPage);
  }

  useEffect(() => {
    if (!focusTarget) return;
    const el = focusTarget.kind === "card" ? cardRefs.current.get(focusTarget.id) : headingRef.current;
    el?.focus();
    setFocusTarget(null);
  }, [focusTarget, ordered]);

  const onDecided = useCallback(
    (decided: ApprovalItem) => {
      const list = ordered ?? [];
      const index = list.findIndex((a) => a.id === decided.id);
      const others = (from: ApprovalItem[]) => from.filter((a) => a.id !== decided.id && isPending(a));
      const after = others(list.slice(index + 1));
      const before = others(list.slice(0, Math.max(0, index))).reverse();
      const open = (a: ApprovalItem) => !isExpired(a, Date.now());
      const next = after.find(open) ?? before.find(open) ?? after[0] ?? before[0];
      setPage(
        (prev) =>
          prev && {
            ...prev,
            items: showDecided ? prev.items.map((a) => (a.id === decided.id ? decided : a)) : prev.items.filter((a) => a.id !== decided.id),
            pending: Math.max(0, prev.pending - 1),
          },
      );
      setAnnouncement(describeDecision(decided));
      setFocusTarget(next ? { kind: "card", id: next.id } : { kind: "heading" });
    },
    [ordered, showDecided, setPage],
  );

  return (
    <section className="approvals" aria-labelledby="approvals-title">
      <div className="section-head">
        <h2 id="approvals-title" ref={headingRef} tabIndex={-1}>
          Approvals
        </h2>
        <span className="muted" aria-live="polite">
          {loading ? "Refreshing…" : ordered ? `${plural(pendingCount, "approval", "approvals")} waiting` : ""}
        </span>
        <label className="toggle">
          <input type="checkbox" checked={showDecided} data-testid="show-decided" onChange={(e) => setShowDecided(e.target.checked)} />
          Show decided
        </label>
        <button type="button" className="btn" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      <p className="visually-hidden" role="status" data-testid="approval-announcement">
        {announcement}
      </p>
      {error && <ErrorNotice error={error} onRetry={reload} />}
      {ordered === null && !error && (
        <p className="muted" role="status">
          Loading approvals…
        </p>
      )}
      {ordered && ordered.length === 0 && !error && (
        <p className="empty" data-testid="approvals-empty">
          {showDecided
            ? "No approvals yet."
            : "Nothing waits for a decision. Tool calls held by a mission's approval mode, and missions paused at their budget, appear here."}
        </p>
      )}
      {ordered && ordered.length > 0 && (
        <ul className="approval-list" data-testid="approvals">
          {ordered.map((item) => (
            <li key={item.id}>
              <ApprovalCard
                item={item}
                now={now}
                onDecided={onDecided}
                onRefresh={reload}
                cardRef={(el) => {
                  if (el) cardRefs.current.set(item.id, el);
                  else cardRefs.current.delete(item.id);
                }}
              />
            </li>
          ))}
        </ul>
      )}
      {moreError && <ErrorNotice error={moreError} onRetry={loadOlder} />}
      {page?.next && (
        <p className="load-more">
          <button type="button" className="btn" data-testid="older-approvals" onClick={loadOlder} disabled={loadingMore}>
            {loadingMore ? "Loading…" : showDecided ? "Show older approvals" : "Show more waiting approvals"}
          </button>
        </p>
      )}
    </section>
  );
}

function titleOf(item: ApprovalItem): string {
  return item.kind === "BudgetCap" ? "Budget cap reached" : (item.tool_name ?? item.tool_id ?? "Tool call");
}

function describeDecision(item: ApprovalItem): string {
  const what = `${titleOf(item)} for ${item.mission_name}`;
  if (item.kind === "BudgetCap") {
    return item.status === "Approved" && item.budget_cents !== null
      ? `Budget raised to ${formatCents(item.budget_cents)}: ${item.mission_name}`
      : `Mission stopped: ${item.mission_name}`;
  }
  return `${item.status === "Approved" ? "Approved" : "Denied"}: ${what}`;
}

/** The codes after which the list, not this card, tells the truth. */
const STALE_CODES = new Set(["approval_not_found", "approval_decided", "approval_expired"]);

interface CardProps {
  item: ApprovalItem;
  now: number;
  onDecided: (item: ApprovalItem) => void;
  onRefresh: () => void;
  cardRef: Ref<HTMLElement>;
}

function ApprovalCard({ item, now, onDecided, onRefresh, cardRef }: CardProps) {
  const platform = usePlatform();
  const uid = useId();
  const titleId = `${uid}-title`;
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const refuseRef = useRef<HTMLButtonElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  // Set by the handlers that open or close the confirmation; the effect below moves focus then.
  const moveFocus = useRef(false);

  const pending = isPending(item);
  const expired = isExpired(item, now);
  const actionable = pending && !expired;
  const budgetCap = item.kind === "BudgetCap";

  useEffect(() => {
    if (!moveFocus.current) return;
    moveFocus.current = false;
    (confirming ? cancelRef : refuseRef).current?.focus();
  }, [confirming]);

  function setConfirm(on: boolean) {
    moveFocus.current = true;
    setConfirming(on);
  }

  async function decide(decision: ApprovalDecision, budgetCents: number | null) {
    if (busy || !actionable) return;
    setBusy(true);
    setError(null);
    try {
      const decided = await platform.decideApproval({ approval_id: item.id, decision, budget_cents: budgetCents });
      onDecided(decided);
    } catch (e) {
      setError(toAppError(e));
      if (confirming) setConfirm(false);
    } finally {
      setBusy(false);
    }
  }

  const refuseLabel = budgetCap ? "Stop mission" : "Deny";

  return (
    <article
      ref={cardRef}
      tabIndex={-1}
      className={`approval-card ${expired ? "approval-expired" : ""} ${pending ? "" : "approval-decided"}`}
      aria-labelledby={titleId}
      data-testid="approval"
      data-approval-id={item.id}
    >
      <header className="approval-head">
        <h3 id={titleId} className="approval-title">
          {titleOf(item)}
          <span className="muted approval-mission"> · {item.mission_name}</span>
        </h3>
        <When item={item} now={now} expired={expired} />
      </header>

      <dl className="approval-facts">
        <div>
          <dt>Sector</dt>
          <dd>{item.sector}</dd>
        </div>
        <div>
          <dt>Dept</dt>
          <dd>{item.dept ?? <span className="muted">—</span>}</dd>
        </div>
        <div>
          {/* For a budget cap, the cost of the call that would have passed it. */}
          <dt>{budgetCap ? "Call cost" : "Cost"}</dt>
          <dd>{formatCents(item.cost_cents)}</dd>
        </div>
        {item.risk && (
          <div>
            <dt>Risk</dt>
            <dd className={`risk-${item.risk.toLowerCase()}`}>{item.risk}</dd>
          </div>
        )}
        {budgetCap && item.budget_cents !== null && (
          <div>
            <dt>Budget</dt>
            <dd>{formatCents(item.budget_cents)}</dd>
          </div>
        )}
      </dl>
      <p className="approval-reason">{item.reason}</p>

      {!budgetCap && (item.args !== null || item.args_hash !== null) && (
        <div className="approval-args">
          <p className="approval-args-head">
            <span>Arguments</span>
            {item.args_hash && (
              <span className="muted small">
                {" "}
                · approval bound to SHA-256{" "}
                <code title={item.args_hash} data-testid="args-hash">
                  {shortHash(item.args_hash)}
                </code>
              </span>
            )}
          </p>
          {item.args !== null && (
            <pre className="args" data-testid="approval-args" tabIndex={0} aria-label={`Arguments of ${titleOf(item)}`}>
              {indentJson(item.args)}
            </pre>
          )}
        </div>
      )}

      {error && (
        <ErrorNotice error={error} onRetry={STALE_CODES.has(error.code) ? onRefresh : undefined} retryLabel="Refresh list" />
      )}

      {pending && expired && (
        <p className="approval-note" data-testid="approval-expired-note">
          Expired: this call will not run. If it is still needed, the agent must make it again.
        </p>
      )}

      {pending &&
        (budgetCap ? (
          <BudgetDecision
            item={item}
            disabled={!actionable || busy}
            hidden={confirming}
            serverInvalid={error?.code === "budget_out_of_range"}
            onRaise={(cents) => decide("Approve", cents)}
            refuseRef={refuseRef}
            onStop={() => setConfirm(true)}
          />
        ) : (
          !confirming && (
            <div className="approval-actions">
              <button type="button" className="btn btn-primary" data-testid="approve" disabled={!actionable || busy} onClick={() => decide("Approve", null)}>
                Approve
              </button>
              <button type="button" className="btn btn-danger" ref={refuseRef} disabled={!actionable || busy} onClick={() => setConfirm(true)}>
                Deny
              </button>
            </div>
          )
        ))}

      {pending && confirming && (
        <div
          className="approval-confirm"
          role="group"
          aria-label={`Confirm: ${refuseLabel}`}
          data-testid="confirm-refuse"
          onKeyDown={(e: KeyboardEvent) => {
            if (e.key === "Escape") {
              e.stopPropagation();
              setConfirm(false);
            }
          }}
        >
          <p>
            {budgetCap
              ? `Stop “${item.mission_name}”? The mission stays stopped and its squad ends its work.`
              : `Deny this call? ${titleOf(item)} will not run, and the agent is told it was refused.`}
          </p>
          <div className="approval-actions">
            <button type="button" className="btn btn-danger" disabled={!actionable || busy} onClick={() => decide("Deny", null)}>
              {budgetCap ? "Yes, stop mission" : "Yes, deny"}
            </button>
            <button type="button" className="btn" ref={cancelRef} onClick={() => setConfirm(false)}>
              Cancel
            </button>
          </div>
        </div>
      )}
    </article>
  );
}

/** Time left, or what happened. */
function When({ item, now, expired }: { item: ApprovalItem; now: number; expired: boolean }) {
  if (item.status === "Pending") {
    if (expired) {
      return (
        <span className="status status-expired" data-testid="approval-countdown">
          Expired
        </span>
      );
    }
    if (item.expires_at !== null) {
      return (
        <time className="approval-when" dateTime={item.expires_at} title={`Expires ${localTime(item.expires_at)}`} data-testid="approval-countdown">
          expires in {formatCountdown(Date.parse(item.expires_at) - now)}
        </time>
      );
    }
    return (
      <span className="approval-when muted" title={item.requested_at}>
        waiting since {localTime(item.requested_at)}
      </span>
    );
  }
  return (
    <span className="approval-when">
      <span className={`status status-${item.status.toLowerCase()}`} data-testid="approval-status">
        {item.status}
      </span>
      {item.decided_by && (
        <span className="muted small">
          {" "}
          by {item.decided_by}
          {item.decided_at && <> · {localTime(item.decided_at)}</>}
        </span>
      )}
    </span>
  );
}

const toCents = (dollars: number) => Math.round(dollars * 100);

interface BudgetProps {
  item: ApprovalItem;
  disabled: boolean;
  /** While the stop is being confirmed. */
  hidden: boolean;
  serverInvalid: boolean;
  onRaise: (cents: number) => void;
  onStop: () => void;
  refuseRef: Ref<HTMLButtonElement>;
}

/** The new budget: above the current one, at most the global policy's cap. */
function BudgetDecision({ item, disabled, hidden, serverInvalid, onRaise, onStop, refuseRef }: BudgetProps) {
  const uid = useId();
  const inputId = `${uid}-budget`;
  const noteId = `${uid}-note`;
  const hintId = `${uid}-hint`;
  const current = item.budget_cents ?? 0;
  const max = item.max_budget_cents;
  const [text, setText] = useState(() => String(current / 100));
  const [clamped, setClamped] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const atCap = max !== null && max <= current;

  function onChange(raw: string) {
    setProblem(null);
    const typed = Number(raw);
    if (raw.trim() !== "" && Number.isFinite(typed) && max !== null && toCents(typed) > max) {
      setText(String(max / 100));
      setClamped(true);
      return;
    }
    setText(raw);
    setClamped(false);
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    const typed = Number(text);
    let message: string | null = null;
    if (text.trim() === "" || !Number.isFinite(typed)) message = "Enter the new budget in dollars.";
    else if (toCents(typed) <= current) message = `Enter more than the current budget (${formatCents(current)}).`;
    else if (max !== null && toCents(typed) > max) message = `Enter at most ${formatCents(max)}, the global policy's cap.`;
    if (message) {
      setProblem(message);
      inputRef.current?.focus();
      return;
    }
    onRaise(toCents(typed));
  }

  const describedBy = [noteId, clamped ? hintId : null].filter(Boolean).join(" ");

  return (
    <form className="budget-decision" onSubmit={submit} noValidate hidden={hidden}>
      <div className="budget-field">
        <label htmlFor={inputId} className="cap-label">
          New budget ($)
        </label>
        <input
          ref={inputRef}
          id={inputId}
          type="number"
          inputMode="decimal"
          className="number"
          data-testid="new-budget"
          min={current / 100}
          max={max !== null ? max / 100 : undefined}
          step="0.01"
          value={text}
          disabled={disabled || atCap}
          aria-describedby={describedBy}
          aria-invalid={problem !== null || serverInvalid || undefined}
          aria-errormessage={problem !== null ? `${uid}-problem` : undefined}
          onChange={(e) => onChange(e.target.value)}
        />
      </div>
      <p id={noteId} className="cap-note">
        {atCap
          ? `The budget is already at the global policy's cap (${formatCents(current)}); it cannot be raised here. Stop the mission, or ask an admin to raise the cap.`
          : `More than the current ${formatCents(current)}${max !== null ? `, at most ${formatCents(max)} (the global policy's cap)` : ""}.`}
      </p>
      {clamped && max !== null && (
        <p id={hintId} className="clamp-hint" role="status" data-testid="new-budget-hint">
          Clamped to the global policy's cap ({formatCents(max)})
        </p>
      )}
      {problem && (
        <p id={`${uid}-problem`} className="field-problem" role="alert" data-testid="new-budget-problem">
          {problem}
        </p>
      )}
      <div className="approval-actions">
        <button type="submit" className="btn btn-primary" disabled={disabled || atCap}>
          Raise budget
        </button>
        <button type="button" className="btn btn-danger" ref={refuseRef} disabled={disabled} onClick={onStop}>
          Stop mission
        </button>
      </div>
    </form>
  );
}
