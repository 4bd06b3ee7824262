import { useEffect, useId, useState, type ReactNode } from "react";

export type ClampKind = "high" | "low" | null;

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

interface NumberFieldProps {
  id: string;
  testId: string;
  /** In base units (cents, seconds, steps). */
  value: number;
  min: number;
  max: number;
  /** Base units → the number shown (dollars, hours, steps). */
  toInput: (base: number) => number;
  /** The number typed → base units. */
  fromInput: (typed: number) => number;
  step: string;
  onChange: (value: number, clamped: ClampKind) => void;
  describedBy?: string;
  invalid?: boolean;
}

/**
 * A number input that clamps as you type: 999999 becomes the cap at once. While the box is
 * empty or half-typed the last valid value stands; leaving the box shows it again.
 */
export function NumberField({ id, testId, value, min, max, toInput, fromInput, step, onChange, describedBy, invalid }: NumberFieldProps) {
  const [text, setText] = useState(() => String(toInput(value)));

  // A change from elsewhere (the slider, a lower budget) shows in the box, unless the box
  // already says it.
  useEffect(() => {
    const typed = Number(text);
    if (text.trim() === "" || !Number.isFinite(typed) || fromInput(typed) !== value) {
      setText(String(toInput(value)));
    }
    // Only outside changes of `value` should rewrite the text.
  }, [value]);

  return (
    <input
      id={id}
      type="number"
      inputMode="decimal"
      className="number"
      data-testid={testId}
      min={toInput(min)}
      max={toInput(max)}
      step={step}
      value={text}
      aria-describedby={describedBy}
      aria-invalid={invalid || undefined}
      onChange={(e) => {
        const raw = e.target.value;
        const typed = Number(raw);
        if (raw.trim() === "" || !Number.isFinite(typed)) {
          setText(raw);
          return;
        }
        const base = fromInput(typed);
        const kept = clamp(base, min, max);
        if (kept !== base) {
          setText(String(toInput(kept)));
          onChange(kept, kept < base ? "high" : "low");
        } else {
          setText(raw);
          onChange(base, null);
        }
      }}
      onBlur={() => setText(String(toInput(value)))}
    />
  );
}

interface CapFieldProps {
  label: string;
  /** "budget" → data-testids "budget-slider" and "budget-input". */
  name: string;
  unit: string;
  value: number;
  min: number;
  max: number;
  /** Slider granularity in base units (a dollar, an hour, a step). */
  sliderStep: number;
  inputStep: string;
  toInput: (base: number) => number;
  fromInput: (typed: number) => number;
  format: (base: number) => string;
  capNote: ReactNode;
  onChange: (value: number) => void;
  invalid?: boolean;
}

/** A "smart slider": a range and a number box bound together, both held between minimum and cap. */
export function CapField(props: CapFieldProps) {
  const { label, name, unit, value, min, max, sliderStep, inputStep, toInput, fromInput, format, capNote, onChange, invalid } = props;
  const uid = useId();
  const inputId = `${uid}-input`;
  const labelId = `${uid}-label`;
  const noteId = `${uid}-note`;
  const hintId = `${uid}-hint`;
  const [hint, setHint] = useState<ClampKind>(null);

  function report(next: number, clamped: ClampKind) {
    setHint(clamped);
    onChange(next);
  }

  return (
    <div className={`cap-field ${invalid ? "cap-invalid" : ""}`}>
      <div className="cap-head">
        <label id={labelId} htmlFor={inputId} className="cap-label">
          {label}
        </label>
        <span className="cap-value">{format(value)}</span>
      </div>
      <div className="cap-controls">
        <input
          type="range"
          className="slider"
          data-testid={`${name}-slider`}
          aria-labelledby={labelId}
          aria-describedby={noteId}
          aria-valuetext={format(value)}
          min={min}
          max={max}
          step={sliderStep}
          value={value}
          onChange={(e) => {
            const raw = Number(e.target.value);
            // The slider's grid starts at the minimum; its last notch stands for the cap even
            // when the cap is off the grid.
            const wanted = raw + sliderStep > max ? max : raw;
            const kept = clamp(wanted, min, max);
            report(kept, kept < wanted ? "high" : kept > wanted ? "low" : null);
          }}
        />
        <span className="number-wrap">
          <NumberField
            id={inputId}
            testId={`${name}-input`}
            value={value}
            min={min}
            max={max}
            toInput={toInput}
            fromInput={fromInput}
            step={inputStep}
            describedBy={`${noteId}${hint ? ` ${hintId}` : ""}`}
            invalid={invalid}
            onChange={report}
          />
          <span className="unit">{unit}</span>
        </span>
      </div>
      <p id={noteId} className="cap-note">
        {capNote}
      </p>
      {hint && (
        <p id={hintId} className="clamp-hint" role="status" data-testid={`${name}-hint`}>
          {hint === "high" ? "Clamped to the cap" : `Raised to the minimum (${format(min)})`}
        </p>
      )}
    </div>
  );
}
