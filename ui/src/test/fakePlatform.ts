import { render, type RenderResult } from "@testing-library/react";
import { createElement, type ReactElement } from "react";
import { vi, type Mock } from "vitest";
import type {
  ActiveMission,
  AppError,
  ApprovalItem,
  ApprovalsChanged,
  AuditEntry,
  AuditQuery,
  DecideApproval,
  ErrorCode,
  ErrorDetails,
  ImportPreview,
  ImportProgress,
  KafkaInfo,
  LibraryQuery,
  MissionDraft,
  MissionEvent,
  MissionStatus,
  MissionUsage,
  MissionView,
  Problem,
  RunRecord,
  SaveMissionRequest,
  SectorTree,
  TemplateSummary,
} from "../bindings";
import { PlatformProvider } from "../platform/context";
import type { Platform } from "../platform/types";

type Mocked<P> = {
  [K in keyof P]: P[K] extends (...args: infer A) => infer R ? Mock<(...args: A) => R> : P[K];
};

export type FakePlatform = Mocked<Platform> & {
  /** Fire the shell's events as Rust would. */
  emit: {
    importStarted: (files: string[]) => void;
    importProgress: (p: ImportProgress) => void;
    importPreview: (p: ImportPreview) => void;
    importFailed: (error: AppError) => void;
    libraryChanged: () => void;
    approvalsChanged: (p: ApprovalsChanged) => void;
    missionsChanged: (missionId: string) => void;
  };
  /** How many listeners each event has now (to check that components unsubscribe). */
  listenerCount: () => number;
  templates: TemplateSummary[];
  missions: ActiveMission[];
  /**
   * The store `missionViews` reads and `deployMission` / `stopMission` change, newest first.
   * `saveMission` adds a Ready view of the mission it saves.
   */
  views: MissionView[];
  /** Every mission's events, in any order; `missionEvents` filters, sorts and pages them. */
  events: MissionEvent[];
  /** The approval store `listApprovals` reads and `decideApproval` changes, in list order. */
  approvals: ApprovalItem[];
  /** The audit log `auditPage` reads, in any order. */
  audit: AuditEntry[];
};

/**
 * A page of `list` as the core pages it: at most `limit` rows after the cursor, and the next
 * page's cursor when rows remain. The fake's cursors are positions (the core's are keysets).
 */
export function fakePage<T>(list: T[], after: string | null, limit: number): { items: T[]; next: string | null } {
  const start = after === null ? 0 : Number(after.replace("at:", ""));
  const items = list.slice(start, start + limit).map((item) => ({ ...item }));
  const end = start + items.length;
  return { items, next: end < list.length ? `at:${end}` : null };
}

const SECTORS: Record<string, string> = { finance: "Finance", wealth: "Wealth", security: "Security" };

export function makeTemplate(i: number, overrides: Partial<TemplateSummary> = {}): TemplateSummary {
  const sector = overrides.sector ?? ["finance", "wealth", "security"][i % 3] ?? "finance";
  return {
    id: `tpl-${i}`,
    name: `Template ${i}`,
    sector,
    sector_name: SECTORS[sector] ?? sector,
    category: i % 2 === 0 ? "Payments" : "Audit",
    goal: `Goal of template ${i}`,
    version: 1,
    logic_hash: "ab".repeat(32),
    baseline_risk: "Medium",
    risk_level: null,
    est_roi: null,
    runs: 0,
    top_performance: false,
    history_note: "No finished runs yet",
    ...overrides,
  };
}

export function makeDraft(overrides: Partial<MissionDraft> = {}): MissionDraft {
  return {
    template: makeTemplate(1, { id: "tpl-1", name: "Burn Rate Watch", sector: "finance", version: 3 }),
    hard_caps: { budget_cents: 25_000, ttl_seconds: 14 * 86_400, max_steps: 200 },
    policy_caps: { budget_cents: 5_000_000, ttl_seconds: 30 * 86_400, max_steps: 10_000 },
    template_caps: { budget_cents: 25_000, ttl_seconds: 14 * 86_400, max_steps: 200 },
    minimums: { budget_cents: 100, ttl_seconds: 3_600, max_steps: 1 },
    defaults: { budget_cents: 10_000, ttl_seconds: 86_400, max_steps: 50, approval_mode: "Strict", threshold_cents: null },
    approval_modes: [
      { mode: "Strict", waits: "Every call to a tool with side effects waits for a human (Pay Invoice); read-only calls run at once." },
      { mode: "Threshold", waits: "Calls costing at least the threshold wait for a human, and so does every call to a High-risk tool (Pay Invoice)." },
      { mode: "Auto", waits: "No call waits for a human; the budget, time and step caps still stop the mission." },
    ],
    connections: [
      { sector: "wealth", sector_name: "Wealth", tools: ["wealth.rebalance"] },
      { sector: "security", sector_name: "Security", tools: ["security.scan", "security.alert"] },
    ],
    ...overrides,
  };
}

export function makeProblem(overrides: Partial<Problem> = {}): Problem {
  return {
    file: "/home/op/manifests/bad.json",
    template_id: "tpl-bad",
    pointer: "/templates/0/ruleset/allowed_tools/2",
    code: "schema",
    message: "unknown tool \"nope.tool\"",
    ...overrides,
  };
}

export function makePreview(overrides: Partial<ImportPreview> = {}): ImportPreview {
  return {
    import_id: "imp-1",
    files: [{ path: "/home/op/manifests/more.json", name: "more.json", bytes: 20_480 }],
    new: 2,
    updated: 1,
    unchanged: 4,
    items: [
      { id: "tpl-new-1", name: "New One", status: "new", version: 1, source: "/home/op/manifests/more.json" },
      { id: "tpl-new-2", name: "New Two", status: "new", version: 1, source: "/home/op/manifests/more.json" },
      { id: "tpl-upd", name: "Updated", status: "updated", version: 2, source: "/home/op/manifests/more.json" },
    ],
    problems: [],
    ...overrides,
  };
}

export function appError(code: ErrorCode, message: string, problems: Problem[] = [], details: Partial<ErrorDetails> = {}): AppError {
  return { code, message, details: { field: null, limit: null, problems, audit_seq: null, ...details } };
}

/** RFC 3339 for `ms` milliseconds from now (negative: in the past). */
export function fromNow(ms: number): string {
  return new Date(Date.now() + ms).toISOString();
}

/** A waiting tool call; `i` makes the id, tool and hash distinct. */
export function makeApproval(i: number, overrides: Partial<ApprovalItem> = {}): ApprovalItem {
  return {
    id: `0190f0c5-0000-7000-8000-${String(i).padStart(12, "0")}`,
    kind: "ToolCall",
    status: "Pending",
    mission_id: "0190f0c4-0000-7000-8000-000000000001",
    mission_name: "Burn Rate Watch",
    sector: "finance",
    dept: 2,
    tool_id: `finance.pay_invoice_${i}`,
    tool_name: `Pay Invoice ${i}`,
    args_hash: `${String(i).padStart(2, "0")}${"c3".repeat(31)}`,
    args: `{"amount_cents":125000,"invoice":"INV-${i}","vendor":"Acme"}`,
    cost_cents: 1_250,
    risk: "High",
    reason: "Strict mode: every side-effecting call waits for a human",
    requested_at: fromNow(-60_000),
    expires_at: fromNow(15 * 60_000),
    decided_by: null,
    decided_at: null,
    budget_cents: null,
    max_budget_cents: null,
    ...overrides,
  };
}

/** A mission paused at its budget: $100.00 now, the policy allows up to $500.00; a $25.00 call hit the cap. */
export function makeBudgetCap(i: number, overrides: Partial<ApprovalItem> = {}): ApprovalItem {
  return makeApproval(i, {
    kind: "BudgetCap",
    dept: null,
    tool_id: null,
    tool_name: null,
    args_hash: null,
    args: null,
    cost_cents: 2_500,
    risk: null,
    reason: "the mission spent 9000 of its 10000 cents and a call costing 2500 would pass the cap; raise the budget or stop the mission",
    expires_at: null,
    budget_cents: 10_000,
    max_budget_cents: 50_000,
    ...overrides,
  });
}

/** A saved mission; `i` makes the id distinct. Burn Rate Watch v3, $500.00, 1 d, 200 steps, Strict. */
export function makeMission(i: number, overrides: Partial<ActiveMission> = {}): ActiveMission {
  return {
    id: `0190f0c4-0000-7000-8000-${String(i).padStart(12, "0")}`,
    template_id: "tpl-1",
    template_name: "Burn Rate Watch",
    template_version: 3,
    logic_hash: "ab".repeat(32),
    sector: "finance",
    perimeter: { budget_cents: 50_000, ttl_seconds: 86_400, max_steps: 200, approval_mode: "Strict", threshold_cents: null },
    connections: [],
    status: "Ready",
    created_at: "2026-11-25T08:30:00.000000Z",
    ...overrides,
  };
}

const ENDED: MissionStatus[] = ["Completed", "Failed", "Expired", "Stopped"];

/** The outcome of a finished mission. */
export function makeRunRecord(mission: ActiveMission, overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    mission_id: mission.id,
    template_id: mission.template_id,
    template_version: mission.template_version,
    status: "Completed",
    profit_cents: 4_210,
    gas_cents: 123,
    steps: 17,
    duration_ms: 185_000,
    failure_reason: null,
    started_at: "2026-11-25T09:00:00Z",
    ended_at: "2026-11-25T09:03:05Z",
    ...overrides,
  };
}

interface ViewOverrides {
  mission?: Partial<ActiveMission>;
  usage?: Partial<MissionUsage>;
  steps_done?: number;
  plan_steps?: number;
  run?: RunRecord | null;
}

/**
 * One mission as the Active Missions view gets it; the status set in `usage` is the mission's
 * too. An ended one gets a run record of that status unless one is given.
 */
export function makeMissionView(i: number, overrides: ViewOverrides = {}): MissionView {
  const status = overrides.usage?.status ?? overrides.mission?.status ?? "Ready";
  const mission = makeMission(i, { ...overrides.mission, status });
  const started = status !== "Ready";
  const usage: MissionUsage = {
    status,
    steps_used: 0,
    max_steps: mission.perimeter.max_steps,
    reserved_cents: 0,
    spent_cents: 0,
    budget_cents: mission.perimeter.budget_cents,
    ttl_seconds: mission.perimeter.ttl_seconds,
    started_at: started ? fromNow(-60_000) : null,
    expires_at: started ? fromNow(mission.perimeter.ttl_seconds * 1000 - 60_000) : null,
    ...overrides.usage,
  };
  const run = overrides.run !== undefined ? overrides.run : ENDED.includes(status) ? makeRunRecord(mission, { status }) : null;
  return { mission, usage, steps_done: overrides.steps_done ?? 0, plan_steps: overrides.plan_steps ?? 4, run };
}

/** One event of the first mission (`makeMission(1)`), from Dept 2's first job, already on Kafka. */
export function makeMissionEvent(seq: number, overrides: Partial<MissionEvent> = {}): MissionEvent {
  return {
    seq,
    event_id: `0190f0c7-0000-7000-8000-${String(seq).padStart(12, "0")}`,
    mission_id: makeMission(1).id,
    job_id: "0190f0c6-0000-7000-8000-0000000000a2",
    dept: 2,
    kind: "job.result",
    ts: new Date(Date.UTC(2026, 10, 25, 9, 0, seq)).toISOString(),
    topic: "mission.events",
    summary: `Dept 2 finished step ${seq}`,
    payload: {},
    published: true,
    ...overrides,
  };
}

export function makeAuditEntry(seq: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  const hash = (n: number) => n.toString(16).padStart(64, "0");
  return {
    seq,
    ts: new Date(Date.UTC(2026, 10, 25, 8, 0, seq)).toISOString(),
    mission_id: "0190f0c4-0000-7000-8000-000000000001",
    job_id: "0190f0c6-0000-7000-8000-000000000001",
    dept: 2,
    caller: "dept-2@burn-rate-watch",
    tool_id: "finance.read_ledger",
    args_hash: "d4".repeat(32),
    decision: "Allowed",
    reason: "read-only call within the perimeter",
    sector: "finance",
    grant: null,
    policy_ids: ["global.default"],
    cost_cents: 5,
    simulated: false,
    prev_hash: hash(seq - 1),
    hash: hash(seq),
    key_id: "ed25519:7f3a9c",
    ...overrides,
  };
}

/** A promise whose settlement the test controls, to deliver answers out of order. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function matches(t: TemplateSummary, q: LibraryQuery): boolean {
  if (q.text !== null) {
    const hay = `${t.name} ${t.goal} ${t.category} ${t.sector_name}`.toLowerCase();
    if (!q.text.toLowerCase().split(/\s+/).every((w) => hay.includes(w))) return false;
  }
  if (q.sector !== null && t.sector !== q.sector) return false;
  if (q.category !== null && t.category !== q.category) return false;
  if (q.risk !== null && (t.risk_level ?? t.baseline_risk) !== q.risk) return false;
  return true;
}

function facets(templates: TemplateSummary[]): SectorTree {
  const sectors = new Map<string, { id: string; name: string; count: number; categories: Map<string, number> }>();
  for (const t of templates) {
    const s = sectors.get(t.sector) ?? { id: t.sector, name: t.sector_name, count: 0, categories: new Map<string, number>() };
    s.count += 1;
    s.categories.set(t.category, (s.categories.get(t.category) ?? 0) + 1);
    sectors.set(t.sector, s);
  }
  return {
    total: templates.length,
    sectors: [...sectors.values()].map((s) => ({
      id: s.id,
      name: s.name,
      count: s.count,
      categories: [...s.categories.entries()].map(([name, count]) => ({ name, count })),
    })),
  };
}

/** What the core would do with a decision, on the in-memory store. */
function decide(approvals: ApprovalItem[], request: DecideApproval): ApprovalItem {
  const index = approvals.findIndex((a) => a.id === request.approval_id);
  const item = approvals[index];
  if (!item) throw appError("approval_not_found", `no approval has the id ${request.approval_id}`);
  if (item.status !== "Pending") throw appError("approval_decided", `the approval was already ${item.status.toLowerCase()}`);
  if (item.expires_at !== null && Date.parse(item.expires_at) <= Date.now()) {
    throw appError("approval_expired", "the approval expired before it was decided");
  }
  if (item.kind === "BudgetCap" && request.decision === "Approve") {
    const budget = request.budget_cents;
    const max = item.max_budget_cents ?? Number.MAX_SAFE_INTEGER;
    if (budget === null || budget <= (item.budget_cents ?? 0) || budget > max) {
      throw appError("budget_out_of_range", "the new budget must be above the current one and within the policy's cap", [], {
        field: "budget_cents",
        limit: max,
      });
    }
  }
  const decided: ApprovalItem = {
    ...item,
    status: request.decision === "Approve" ? "Approved" : "Denied",
    decided_by: "operator",
    decided_at: new Date().toISOString(),
    budget_cents: item.kind === "BudgetCap" && request.decision === "Approve" ? request.budget_cents : item.budget_cents,
  };
  approvals[index] = decided;
  return { ...decided };
}

function auditPage(entries: AuditEntry[], query: AuditQuery) {
  const hits = entries
    .filter((e) => query.mission_id === null || e.mission_id === query.mission_id)
    .filter((e) => query.sector === null || e.sector === query.sector)
    .filter((e) => query.before_seq === null || e.seq < query.before_seq)
    .sort((a, b) => b.seq - a.seq);
  return { entries: hits.slice(0, query.limit), has_more: hits.length > query.limit };
}

const PAGE = 500;

function findView(views: MissionView[], missionId: string): { index: number; view: MissionView } {
  const index = views.findIndex((v) => v.mission.id === missionId);
  const view = views[index];
  if (!view) throw appError("mission_not_found", `no mission has the id ${missionId}`);
  return { index, view };
}

function withStatus(view: MissionView, status: MissionStatus, usage: Partial<MissionUsage> = {}): MissionView {
  return { ...view, mission: { ...view.mission, status }, usage: { ...view.usage, ...usage, status } };
}

/** What the core would do to deploy a mission, on the in-memory store. */
function deploy(views: MissionView[], missionId: string): MissionView {
  const { index, view } = findView(views, missionId);
  if (view.usage.status !== "Ready") throw appError("mission_not_active", `the mission is ${view.usage.status}, not Ready`);
  const now = Date.now();
  const deployed = withStatus(view, "Running", {
    started_at: new Date(now).toISOString(),
    expires_at: new Date(now + view.usage.ttl_seconds * 1000).toISOString(),
  });
  views[index] = deployed;
  return deployed;
}

/** What the core would do to stop a mission, on the in-memory store. */
function stop(views: MissionView[], missionId: string): MissionView {
  const { index, view } = findView(views, missionId);
  if (view.usage.status !== "Running" && view.usage.status !== "Paused") {
    throw appError("mission_not_active", `the mission is ${view.usage.status}, not running`);
  }
  const stopped: MissionView = {
    ...withStatus(view, "Stopped"),
    run: makeRunRecord(view.mission, {
      status: "Stopped",
      profit_cents: -view.usage.spent_cents,
      gas_cents: view.usage.spent_cents,
      steps: view.usage.steps_used,
      failure_reason: "stopped by operator",
    }),
  };
  views[index] = stopped;
  return stopped;
}

/** An in-memory platform: a searchable template list, a mission store and hand-fired events. */
export function createFakePlatform(templates: TemplateSummary[] = Array.from({ length: 30 }, (_, i) => makeTemplate(i))): FakePlatform {
  const listeners = {
    importStarted: new Set<(files: string[]) => void>(),
    importProgress: new Set<(p: ImportProgress) => void>(),
    importPreview: new Set<(p: ImportPreview) => void>(),
    importFailed: new Set<(error: AppError) => void>(),
    libraryChanged: new Set<() => void>(),
    approvalsChanged: new Set<(p: ApprovalsChanged) => void>(),
    missionsChanged: new Set<(missionId: string) => void>(),
  };
  function on<T>(set: Set<T>, cb: T): () => void {
    set.add(cb);
    return () => {
      set.delete(cb);
    };
  }
  const missions: ActiveMission[] = [];
  const views: MissionView[] = [];
  const events: MissionEvent[] = [];
  const approvals: ApprovalItem[] = [];
  const audit: AuditEntry[] = [];
  const byRequest = new Map<string, ActiveMission>();
  let ids = 0;
  let requestIds = 0;

  const fake: FakePlatform = {
    templates,
    missions,
    views,
    events,
    approvals,
    audit,
    searchLibrary: vi.fn(async (query: LibraryQuery, offset: number, limit: number) => {
      const hits = templates.filter((t) => matches(t, query));
      return { total: hits.length, offset, templates: hits.slice(offset, offset + limit) };
    }),
    libraryFacets: vi.fn(async (text: string | null, risk) =>
      facets(templates.filter((t) => matches(t, { text, risk, sector: null, category: null }))),
    ),
    missionDraft: vi.fn(async (templateId: string) => {
      const t = templates.find((x) => x.id === templateId);
      const draft = makeDraft();
      return t ? { ...draft, template: t } : draft;
    }),
    saveMission: vi.fn(async (request: SaveMissionRequest) => {
      const existing = byRequest.get(request.request_id);
      if (existing) return { mission: existing, created: false };
      const template = templates.find((t) => t.id === request.template_id) ?? makeTemplate(0);
      ids += 1;
      const mission: ActiveMission = {
        id: `0190f0c4-0000-7000-8000-${String(ids).padStart(12, "0")}`,
        template_id: request.template_id,
        template_name: template.name,
        template_version: request.template_version,
        logic_hash: template.logic_hash,
        sector: template.sector,
        perimeter: {
          budget_cents: request.budget_cents,
          ttl_seconds: request.ttl_seconds,
          max_steps: request.max_steps,
          approval_mode: request.approval_mode,
          threshold_cents: request.threshold_cents,
        },
        connections: request.connections,
        status: "Ready",
        created_at: "2026-11-25T08:30:00.000000Z",
      };
      byRequest.set(request.request_id, mission);
      missions.unshift(mission);
      views.unshift(makeMissionView(ids, { mission }));
      return { mission, created: true };
    }),
    listMissions: vi.fn(async (after: string | null, limit: number) => fakePage(missions, after, limit)),
    missionViews: vi.fn(async (after: string | null, limit: number) => fakePage(views, after, limit)),
    missionEvents: vi.fn(async (missionId: string, afterSeq: number) =>
      events
        .filter((e) => e.mission_id === missionId && e.seq > afterSeq)
        .sort((a, b) => a.seq - b.seq)
        .slice(0, PAGE)
        .map((e) => ({ ...e })),
    ),
    deployMission: vi.fn(async (missionId: string) => deploy(views, missionId)),
    stopMission: vi.fn(async (missionId: string) => stop(views, missionId)),
    kafkaStatus: vi.fn(async (): Promise<KafkaInfo> => ({
      mode: "embedded (librdkafka mock cluster)",
      embedded: true,
      bootstrap_servers: "127.0.0.1:39092",
    })),
    pickManifests: vi.fn(async () => null),
    confirmImport: vi.fn(async () => ({ dry_run: false, new: 0, updated: 0, unchanged: 0, items: [] })),
    cancelImport: vi.fn(async () => undefined),
    listApprovals: vi.fn(async (pendingOnly: boolean, after: string | null, limit: number) => ({
      ...fakePage(
        approvals.filter((a) => !pendingOnly || a.status === "Pending"),
        after,
        limit,
      ),
      pending: approvals.filter((a) => a.status === "Pending").length,
    })),
    decideApproval: vi.fn(async (request: DecideApproval) => decide(approvals, request)),
    auditPage: vi.fn(async (query: AuditQuery) => auditPage(audit, query)),
    auditVerify: vi.fn(async () => ({
      records: audit.length,
      ok: true,
      first_bad: null,
      keys: ["ed25519:7f3a9c"],
      anchor: "the keys pinned in audit-trust.json (1 key, fingerprint 7f3a9c)",
      extends: null,
    })),
    onImportStarted: vi.fn((cb: (files: string[]) => void) => on(listeners.importStarted, cb)),
    onImportProgress: vi.fn((cb: (p: ImportProgress) => void) => on(listeners.importProgress, cb)),
    onImportPreview: vi.fn((cb: (p: ImportPreview) => void) => on(listeners.importPreview, cb)),
    onImportFailed: vi.fn((cb: (error: AppError) => void) => on(listeners.importFailed, cb)),
    onLibraryChanged: vi.fn((cb: () => void) => on(listeners.libraryChanged, cb)),
    onApprovalsChanged: vi.fn((cb: (p: ApprovalsChanged) => void) => on(listeners.approvalsChanged, cb)),
    onMissionsChanged: vi.fn((cb: (missionId: string) => void) => on(listeners.missionsChanged, cb)),
    libraryRendered: vi.fn(() => undefined),
    newRequestId: vi.fn(() => `00000000-0000-4000-8000-${String(++requestIds).padStart(12, "0")}`),
    emit: {
      importStarted: (files) => listeners.importStarted.forEach((cb) => cb(files)),
      importProgress: (p) => listeners.importProgress.forEach((cb) => cb(p)),
      importPreview: (p) => listeners.importPreview.forEach((cb) => cb(p)),
      importFailed: (error) => listeners.importFailed.forEach((cb) => cb(error)),
      libraryChanged: () => listeners.libraryChanged.forEach((cb) => cb()),
      approvalsChanged: (p) => listeners.approvalsChanged.forEach((cb) => cb(p)),
      missionsChanged: (missionId) => listeners.missionsChanged.forEach((cb) => cb(missionId)),
    },
    listenerCount: () => Object.values(listeners).reduce((n, set) => n + set.size, 0),
  };
  return fake;
}

export function renderWithPlatform(ui: ReactElement, platform: Platform): RenderResult {
  return render(createElement(PlatformProvider, { platform, children: ui }));
}
