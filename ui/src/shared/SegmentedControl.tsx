import { useRef, type KeyboardEvent, type ReactNode } from "react";

export interface Segment<T extends string> {
  value: T;
  label: ReactNode;
  testId?: string;
  className?: string;
}

interface Props<T extends string> {
  label: string;
  segments: Segment<T>[];
  value: T;
  onChange: (value: T) => void;
  testId?: string;
  className?: string;
  disabled?: boolean;
}

/** A radio group drawn as joined buttons; arrow keys move the choice, as with native radios. */
export function SegmentedControl<T extends string>({ label, segments, value, onChange, testId, className, disabled }: Props<T>) {
  const refs = useRef(new Map<T, HTMLButtonElement>());

  function move(e: KeyboardEvent, delta: number | "first" | "last") {
    e.preventDefault();
    const index = segments.findIndex((s) => s.value === value);
    const next =
      delta === "first" ? 0 : delta === "last" ? segments.length - 1 : (index + delta + segments.length) % segments.length;
    const segment = segments[next];
    if (!segment) return;
    onChange(segment.value);
    refs.current.get(segment.value)?.focus();
  }

  function onKeyDown(e: KeyboardEvent) {
    if (e.key === "ArrowRight" || e.key === "ArrowDown") move(e, 1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") move(e, -1);
    else if (e.key === "Home") move(e, "first");
    else if (e.key === "End") move(e, "last");
  }

  return (
    <div role="radiogroup" aria-label={label} className={`segmented ${className ?? ""}`} data-testid={testId} onKeyDown={onKeyDown}>
      {segments.map((s) => {
        const checked = s.value === value;
        return (
          <button
            key={s.value}
            ref={(el) => {
              if (el) refs.current.set(s.value, el);
              else refs.current.delete(s.value);
            }}
            type="button"
            role="radio"
            aria-checked={checked}
            tabIndex={checked ? 0 : -1}
            className={`segment ${checked ? "segment-on" : ""} ${s.className ?? ""}`}
            data-testid={s.testId}
            disabled={disabled}
            onClick={() => onChange(s.value)}
          >
            {s.label}
          </button>
        );
      })}
    </div>
  );
}
