import type { ApprovalMode, Perimeter, RiskLevel, TemplateSummary } from "./bindings";

const dollars = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

/** 25000 → "$250.00". */
export function formatCents(cents: number): string {
  return dollars.format(cents / 100);
}

/** 1209600 → "14 d", 21600 → "6 h", 93600 → "1 d 2 h", 1800 → "30 min". */
export function formatTtl(seconds: number): string {
  const minutes = Math.round(seconds / 60);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const mins = minutes % 60;
  const parts: string[] = [];
  if (days > 0) parts.push(`${days} d`);
  if (hours > 0) parts.push(`${hours} h`);
  if (mins > 0 || parts.length === 0) parts.push(`${mins} min`);
  return parts.join(" ");
}

/** 0.125 → "+12.5%" (the core reports ROI as a fraction). */
export function formatRoi(roi: number): string {
  const percent = roi * 100;
  const text = `${Math.abs(percent).toFixed(1)}%`;
  if (text === "0.0%") return text;
  return percent > 0 ? `+${text}` : `-${text}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function plural(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/** The risk to show for a template: history when there is some, else the template's own rating. */
export function riskOf(t: TemplateSummary): { level: RiskLevel; label: string; fromHistory: boolean } {
  if (t.risk_level !== null) return { level: t.risk_level, label: t.risk_level, fromHistory: true };
  return { level: t.baseline_risk, label: `Baseline: ${t.baseline_risk}`, fromHistory: false };
}

export function describeApproval(mode: ApprovalMode, thresholdCents: number | null | undefined): string {
  if (mode === "Threshold" && thresholdCents !== null && thresholdCents !== undefined) {
    return `Threshold ≥ ${formatCents(thresholdCents)}`;
  }
  return mode;
}

export function describePerimeter(p: Perimeter): string {
  return `${formatCents(p.budget_cents)}, ${formatTtl(p.ttl_seconds)}, ${plural(p.max_steps, "step", "steps")}`;
}

/** The last characters of an id: UUID v7s share their leading (time) digits. */
export function shortId(id: string): string {
  const compact = id.replace(/-/g, "");
  return compact.length > 8 ? `…${compact.slice(-8)}` : id;
}

export function localTime(rfc3339: string): string {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}
