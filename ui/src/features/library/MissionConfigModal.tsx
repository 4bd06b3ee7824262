import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import type { ActiveMission, AppError, ApprovalMode, Caps, MissionDraft, SaveOutcome } from "../../bindings";
import { toAppError } from "../../errors";
import { formatCents, formatTtl, plural, riskOf } from "../../format";
import { usePlatform } from "../../platform/context";
import { ErrorNotice } from "../../shared/ErrorNotice";
import { Modal } from "../../shared/Modal";
import { SegmentedControl } from "../../shared/SegmentedControl";
import { useLoader } from "../../shared/useLoader";
import { CapField, NumberField, type ClampKind } from "./CapField";

interface Props {
  templateId: string;
  /** Shown while the draft loads. */
  templateName?: string;
  onClose: () => void;
  onSaved?: (mission: ActiveMission) => void;
}

const MODES: ApprovalMode[] = ["Strict", "Threshold", "Auto"];

const HOUR = 3600;
const toDollars = (cents: number) => cents / 100;
const fromDollars = (dollars: number) => Math.round(dollars * 100);
const toHours = (seconds: number) => Math.round(seconds / 36) / 100;
const fromHours = (hours: number) => Math.round(hours * HOUR);
const same = (n: number) => n;
const wholeSteps = (n: number) => Math.round(n);
const formatSteps = (n: number) => plural(n, "step", "steps");

/**
 * Quick Deploy's configurator. One opening = one request id, so saving twice sends the same
 * id and the core answers with the mission it already saved.
 */
export function MissionConfigModal({ templateId, templateName, onClose, onSaved }: Props) {
  const platform = usePlatform();
  const uid = useId();
  const titleId = `${uid}-title`;
  const [requestId] = useState(() => platform.newRequestId());
  // A retry shows "Loading the perimeter…" again rather than the failure it is retrying.
  const {
    data: draft,
    error: draftError,
    reload: retryDraft,
  } = useLoader(() => platform.missionDraft(templateId), [platform, templateId], { clearErrorOnStart: true });

  const name = draft?.template.name ?? templateName ?? "mission";

  return (
    <Modal labelledBy={titleId} onEscape={onClose} testId="mission-config-modal" className="config-modal">
      <header className="modal-head">
        <h2 id={titleId}>Deploy “{name}”</h2>
        {draft && (
          <p className="muted">
            v{draft.template.version} · {draft.template.sector_name} · {draft.template.category} ·{" "}
            <span title={`logic_hash ${draft.template.logic_hash}`}>ruleset {draft.template.logic_hash.slice(0, 12)}</span> ·{" "}
            {riskOf(draft.template).label} risk
          </p>
        )}
      </header>
      {draft ? (
        <DraftForm draft={draft} requestId={requestId} onClose={onClose} onSaved={onSaved} />
      ) : draftError ? (
        <div className="modal-body">
          <ErrorNotice error={draftError} onRetry={retryDraft} />
          <div className="modal-actions">
            <button type="button" className="btn" data-testid="cancel-mission" onClick={onClose}>
              Cancel
            </button>
          </div>
        </div>
      ) : (
        <div className="modal-body">
          <p className="muted" role="status">
            Loading the perimeter…
          </p>
          <div className="modal-actions">
            <button type="button" className="btn" data-testid="cancel-mission" onClick={onClose}>
              Cancel
            </button>
          </div>
        </div>
      )}
    </Modal>
  );
}

interface FormProps {
  draft: MissionDraft;
  requestId: string;
  onClose: () => void;
  onSaved?: (mission: ActiveMission) => void;
}

function DraftForm({ draft, requestId, onClose, onSaved }: FormProps) {
  const platform = usePlatform();
  const uid = useId();
  const { hard_caps: caps, minimums: mins, defaults } = draft;

  const [budget, setBudget] = useState(() => clampTo(defaults.budget_cents, mins.budget_cents, caps.budget_cents));
  const [ttl, setTtl] = useState(() => clampTo(defaults.ttl_seconds, mins.ttl_seconds, caps.ttl_seconds));
  const [steps, setSteps] = useState(() => clampTo(defaults.max_steps, mins.max_steps, caps.max_steps));
  const [mode, setMode] = useState<ApprovalMode>(defaults.approval_mode);
  const [threshold, setThreshold] = useState(() =>
    clampTo(defaults.threshold_cents ?? defaults.budget_cents, 0, clampTo(defaults.budget_cents, mins.budget_cents, caps.budget_cents)),
  );
  const [thresholdHint, setThresholdHint] = useState<ClampKind>(null);
  const [ticked, setTicked] = useState<ReadonlySet<string>>(() => new Set());
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<AppError | null>(null);
  const [outcome, setOutcome] = useState<SaveOutcome | null>(null);
  const resultRef = useRef<HTMLDivElement>(null);
  // The dialog body scrolls: bring the saved mission's id into view next to the buttons.
  useEffect(() => {
    const node = resultRef.current;
    if (outcome && node && typeof node.scrollIntoView === "function") node.scrollIntoView({ block: "end" });
  }, [outcome]);

  const waits = draft.approval_modes.find((m) => m.mode === mode)?.waits ?? "";
  const waitsId = `${uid}-waits`;
  const thresholdId = `${uid}-threshold`;
  const connectionsNoteId = `${uid}-connections-note`;
  const invalidField = saveError?.code === "perimeter_out_of_range" ? saveError.details.field : null;

  // The threshold as chosen; what is shown and sent never exceeds the budget. Kept apart so
  // that typing a budget digit by digit ("5", "50") does not drag the threshold down for good.
  const effectiveThreshold = Math.min(threshold, budget);

  function toggleConnection(sector: string, on: boolean) {
    setTicked((prev) => {
      const next = new Set(prev);
      if (on) next.add(sector);
      else next.delete(sector);
      return next;
    });
  }

  async function save(e?: FormEvent) {
    e?.preventDefault();
    if (saving) return;
    setSaving(true);
    setSaveError(null);
    try {
      const result = await platform.saveMission({
        request_id: requestId,
        template_id: draft.template.id,
        template_version: draft.template.version,
        budget_cents: budget,
        ttl_seconds: ttl,
        max_steps: steps,
        approval_mode: mode,
        threshold_cents: mode === "Threshold" ? effectiveThreshold : null,
        // In the order the template declares them.
        connections: draft.connections.map((c) => c.sector).filter((s) => ticked.has(s)),
      });
      setOutcome(result);
      onSaved?.(result.mission);
    } catch (err) {
      setSaveError(toAppError(err));
    } finally {
      setSaving(false);
    }
  }

  const saved = outcome !== null;

  return (
    <form className="modal-body" onSubmit={save} noValidate>
      <fieldset disabled={saved} className="plain-fieldset">
        <section className="modal-section" aria-labelledby={`${uid}-perimeter`}>
          <h3 id={`${uid}-perimeter`}>Perimeter</h3>
          <CapField
            label="Budget"
            name="budget"
            unit="$"
            value={budget}
            min={mins.budget_cents}
            max={caps.budget_cents}
            sliderStep={100}
            inputStep="0.01"
            toInput={toDollars}
            fromInput={fromDollars}
            format={formatCents}
            capNote={capNote(draft, "budget_cents", formatCents)}
            onChange={setBudget}
            invalid={invalidField === "budget_cents"}
          />
          <CapField
            label="Time to live"
            name="ttl"
            unit="h"
            value={ttl}
            min={mins.ttl_seconds}
            max={caps.ttl_seconds}
            sliderStep={HOUR}
            inputStep="1"
            toInput={toHours}
            fromInput={fromHours}
            format={formatTtl}
            capNote={capNote(draft, "ttl_seconds", formatTtl)}
            onChange={setTtl}
            invalid={invalidField === "ttl_seconds"}
          />
          <CapField
            label="Max steps"
            name="steps"
            unit="steps"
            value={steps}
            min={mins.max_steps}
            max={caps.max_steps}
            sliderStep={1}
            inputStep="1"
            toInput={same}
            fromInput={wholeSteps}
            format={formatSteps}
            capNote={capNote(draft, "max_steps", formatSteps)}
            onChange={setSteps}
            invalid={invalidField === "max_steps"}
          />
        </section>

        <section className="modal-section" aria-labelledby={`${uid}-approval`}>
          <h3 id={`${uid}-approval`}>Approval mode</h3>
          <SegmentedControl<ApprovalMode>
            label="Approval mode"
            className="mode-toggle"
            value={mode}
            onChange={setMode}
            segments={MODES.map((m) => ({
              value: m,
              testId: `mode-${m}`,
              className: `mode-${m.toLowerCase()}`,
              label: (
                <>
                  <span className="mode-name">{m}</span>
                  <span className="mode-sub">{MODE_SUMMARY[m]}</span>
                </>
              ),
            }))}
          />
          <p id={waitsId} className="waits" data-testid="mode-waits" aria-live="polite">
            {waits}
          </p>
          {mode === "Threshold" && (
            <div className="threshold">
              <label htmlFor={thresholdId}>Wait for a human at or above</label>
              <span className="number-wrap">
                <span className="unit">$</span>
                <NumberField
                  id={thresholdId}
                  testId="threshold-input"
                  value={effectiveThreshold}
                  min={0}
                  max={budget}
                  toInput={toDollars}
                  fromInput={fromDollars}
                  step="0.01"
                  describedBy={waitsId}
                  invalid={invalidField === "threshold_cents"}
                  onChange={(value, clamped) => {
                    setThreshold(value);
                    setThresholdHint(clamped);
                  }}
                />
              </span>
              <span className="muted">between $0.00 and the budget ({formatCents(budget)})</span>
              {thresholdHint && (
                <p className="clamp-hint" role="status" data-testid="threshold-hint">
                  {thresholdHint === "high" ? "Clamped to the budget" : "Raised to $0.00"}
                </p>
              )}
            </div>
          )}
        </section>

        <section className="modal-section" aria-labelledby={`${uid}-connections`}>
          <h3 id={`${uid}-connections`}>Sector connections</h3>
          {draft.connections.length === 0 ? (
            <p className="muted">This template uses only tools of its own sector; there is nothing to connect.</p>
          ) : (
            <>
              <p id={connectionsNoteId} className="muted">
                Nothing is granted until you tick it. Tools under an unticked connection will be refused by the gateway.
              </p>
              <ul className="connections">
                {draft.connections.map((c) => {
                  const boxId = `${uid}-conn-${c.sector}`;
                  return (
                    <li key={c.sector} className="connection">
                      <input
                        id={boxId}
                        type="checkbox"
                        data-testid={`connection-${c.sector}`}
                        checked={ticked.has(c.sector)}
                        aria-describedby={connectionsNoteId}
                        onChange={(e) => toggleConnection(c.sector, e.target.checked)}
                      />
                      <label htmlFor={boxId}>
                        <span className="connection-name">{c.sector_name}</span>
                        <span className="connection-tools">
                          {c.tools.length > 0 ? `Enables ${c.tools.join(", ")}` : "Enables no tool of this ruleset"}
                        </span>
                      </label>
                    </li>
                  );
                })}
              </ul>
            </>
          )}
        </section>
      </fieldset>

      {saveError && <ErrorNotice error={saveError} />}
      {outcome && (
        <div ref={resultRef} className="notice notice-success" role="status" data-testid="save-result">
          <p className="notice-title">Saved</p>
          <p>
            Mission <code data-testid="saved-mission-id">{outcome.mission.id}</code> is ready
            {outcome.created ? "." : " — it was already saved by this dialog; no second mission was created."}
          </p>
          <p className="muted">To deploy another mission from this template, close and press Quick Deploy again.</p>
        </div>
      )}

      <div className="modal-actions">
        {saved ? (
          <button type="button" className="btn" data-testid="close-mission" onClick={onClose} autoFocus>
            Close
          </button>
        ) : (
          <button type="button" className="btn" data-testid="cancel-mission" onClick={onClose}>
            Cancel
          </button>
        )}
        <button type="submit" className="btn btn-primary" data-testid="save-mission" disabled={saving} aria-busy={saving}>
          {saving ? "Saving…" : "Save mission"}
        </button>
      </div>
    </form>
  );
}

const MODE_SUMMARY: Record<ApprovalMode, string> = {
  Strict: "a human approves every side effect",
  Threshold: "a human approves costly or high-risk calls",
  Auto: "only the caps stop it",
};

function clampTo(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function capNote(draft: MissionDraft, field: keyof Caps, format: (n: number) => string) {
  const cap = draft.hard_caps[field];
  const policy = draft.policy_caps[field];
  const template = draft.template_caps[field];
  return (
    <>
      Cap <strong>{format(cap)}</strong> — the lower of the global policy ({format(policy)}) and this template ({format(template)})
    </>
  );
}
