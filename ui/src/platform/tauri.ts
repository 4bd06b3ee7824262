// The only module (with the generated bindings) that talks to Tauri. It adapts the generated
// `commands` (which resolve to `{status, data | error}`) and `events` (which resolve to an
// unlisten function) to the plain `Platform` interface the components use.
import type { UnlistenFn } from "@tauri-apps/api/event";
import { commands, events, type AppError } from "../bindings";
import { toAppError } from "../errors";
import type { Platform } from "./types";

type CommandResult<T> = { status: "ok"; data: T } | { status: "error"; error: AppError };

/** Resolves with the command's data, or rejects with an `AppError` (never an `Error`). */
async function unwrap<T>(pending: Promise<CommandResult<T>>): Promise<T> {
  let result: CommandResult<T>;
  try {
    result = await pending;
  } catch (e) {
    throw toAppError(e);
  }
  if (result.status === "ok") return result.data;
  throw toAppError(result.error);
}

/**
 * Subscribes synchronously from the caller's point of view: `listen` resolves later, so an
 * unsubscribe that comes first is remembered and applied as soon as the listener exists.
 */
// The generated `listen`s are closures over the event name, so passing them unbound is fine.
function subscribe<T>(
  listen: (cb: (event: { payload: T }) => void) => Promise<UnlistenFn>,
  handler: (payload: T) => void,
): () => void {
  let active = true;
  let unlisten: UnlistenFn | null = null;
  listen((event) => {
    if (active) handler(event.payload);
  }).then(
    (fn) => {
      if (active) unlisten = fn;
      else fn();
    },
    (e: unknown) => console.error("could not listen to a Mission Control event", toAppError(e).message),
  );
  return () => {
    active = false;
    unlisten?.();
    unlisten = null;
  };
}

function randomUuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Version 4 from getRandomValues, for webviews without randomUUID.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function createTauriPlatform(): Platform {
  return {
    searchLibrary: (query, offset, limit) => unwrap(commands.librarySearch(query, offset, limit)),
    libraryFacets: (text, risk) => unwrap(commands.libraryFacets(text, risk)),
    missionDraft: (templateId) => unwrap(commands.missionDraft(templateId)),
    saveMission: (request) => unwrap(commands.saveMission(request)),
    listMissions: (after, limit) => unwrap(commands.listMissions(after, limit)),
    missionViews: (after, limit) => unwrap(commands.missionViews(after, limit)),
    missionEvents: (missionId, afterSeq) => unwrap(commands.missionEvents(missionId, afterSeq)),
    deployMission: (missionId) => unwrap(commands.deployMission(missionId)),
    stopMission: (missionId) => unwrap(commands.stopMission(missionId)),
    kafkaStatus: () => unwrap(commands.kafkaStatus()),
    pickManifests: () => unwrap(commands.pickManifests()),
    confirmImport: (importId) => unwrap(commands.confirmImport(importId)),
    cancelImport: async (importId) => {
      await unwrap(commands.cancelImport(importId));
    },
    listApprovals: (pendingOnly, after, limit) => unwrap(commands.listApprovals(pendingOnly, after, limit)),
    decideApproval: (request) => unwrap(commands.decideApproval(request)),
    auditPage: (query) => unwrap(commands.auditPage(query)),
    auditVerify: () => unwrap(commands.auditVerify()),
    onImportStarted: (cb) => subscribe(events.importStarted.listen, (p) => cb(p.files)),
    onImportProgress: (cb) => subscribe(events.importProgress.listen, cb),
    onImportPreview: (cb) => subscribe(events.importPreviewReady.listen, cb),
    onImportFailed: (cb) => subscribe(events.importFailed.listen, (p) => cb(toAppError(p.error))),
    onLibraryChanged: (cb) => subscribe(events.libraryChanged.listen, () => cb()),
    onApprovalsChanged: (cb) => subscribe(events.approvalsChanged.listen, cb),
    onMissionsChanged: (cb) => subscribe(events.missionsChanged.listen, (p) => cb(p.mission_id)),
    libraryRendered: (count) => {
      // A startup metric: losing it must never disturb the library.
      // (It returns the bare invoke promise, not a `{status}` result; a synchronous throw counts too.)
      new Promise<void>((resolve) => resolve(commands.libraryRendered(count))).catch(() => undefined);
    },
    newRequestId: randomUuid,
  };
}
