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
  return localDateTime(rfc3339, false);
}

/** Like `localTime`, with seconds: audit records a second apart must read apart. */
export function localTimeWithSeconds(rfc3339: string): string {
  return localDateTime(rfc3339, true);
}

function localDateTime(rfc3339: string, seconds: boolean): string {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    ...(seconds ? { second: "2-digit" } : {}),
  });
}

/** Time left, coarse to fine: "2 d 3 h", "1 h 05 min", "4 min 05 s", "42 s". */
export function formatCountdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${two(minutes)} min`;
  if (minutes > 0) return `${minutes} min ${two(seconds)} s`;
  return `${seconds} s`;
}

/** How long something took: "850 ms" under a second, then as `formatCountdown` ("3 min 05 s"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  return formatCountdown(ms);
}

/** The first characters of a hash, for a column; the full hash belongs in a title. */
export function shortHash(hash: string, length = 12): string {
  return hash.length > length ? `${hash.slice(0, length)}…` : hash;
}

/**
 * Indents JSON text for reading without parsing it: every literal stays exactly as sent
 * (`JSON.parse` would round integers beyond 2^53, and a reviewer must see what was hashed).
 * Text that is not JSON comes back unchanged in substance, merely re-spaced.
 */
export function indentJson(text: string, indent = "  "): string {
  let out = "";
  let depth = 0;
  let inString = false;
  let escaped = false;
  const newline = () => `\n${indent.repeat(depth)}`;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charAt(i);
    if (inString) {
      out += c;
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
    } else if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      let j = i + 1;
      while (j < text.length && /\s/.test(text.charAt(j))) j += 1;
      if (text.charAt(j) === close) {
        // Empty object or array: keep it on one line.
        out += c + close;
        i = j;
      } else {
        depth += 1;
        out += c + newline();
      }
    } else if (c === "}" || c === "]") {
      depth = Math.max(0, depth - 1);
      out += newline() + c;
    } else if (c === ",") {
      out += c + newline();
    } else if (c === ":") {
      out += ": ";
    } else if (!/\s/.test(c)) {
      out += c;
    }
  }
  return out;
}
