import type {
  AppError,
  ApprovalItem,
  ApprovalPage,
  ApprovalsChanged,
  AuditPage,
  AuditQuery,
  DecideApproval,
  ImportPreview,
  ImportProgress,
  ImportReport,
  KafkaInfo,
  LibraryPage,
  LibraryQuery,
  MissionDraft,
  MissionEvent,
  MissionList,
  MissionPage,
  MissionView,
  RiskLevel,
  SaveMissionRequest,
  SaveOutcome,
  SectorTree,
  VerifyReport,
} from "../bindings";

/**
 * Everything the UI asks of the desktop shell. Components receive it through
 * `PlatformProvider`, so they render in tests with a fake one.
 * Every method rejects with an `AppError` object (not an `Error`) on failure.
 */
export interface Platform {
  searchLibrary(query: LibraryQuery, offset: number, limit: number): Promise<LibraryPage>;
  libraryFacets(text: string | null, risk: RiskLevel | null): Promise<SectorTree>;
  missionDraft(templateId: string): Promise<MissionDraft>;
  saveMission(request: SaveMissionRequest): Promise<SaveOutcome>;
  /** One page of saved missions, newest first, after the cursor `after` (null: the first page). */
  listMissions(after: string | null, limit: number): Promise<MissionList>;
  /** One page of missions, newest first, each with its usage, plan progress and run record. */
  missionViews(after: string | null, limit: number): Promise<MissionPage>;
  /** A mission's events with `seq` above `afterSeq`, oldest first; at most 500 at a time. */
  missionEvents(missionId: string, afterSeq: number): Promise<MissionEvent[]>;
  /** Starts a Ready mission (its clock starts and its squad assembles); resolves with it as it is now. */
  deployMission(missionId: string): Promise<MissionView>;
  /** Stops a Running or Paused mission as the person at the keyboard; resolves with it as it is now. */
  stopMission(missionId: string): Promise<MissionView>;
  /** Which Kafka the squads use; rejects when Kafka could not be started. */
  kafkaStatus(): Promise<KafkaInfo>;
  /** A mission's state or events changed (a few times a second at most, per mission). */
  onMissionsChanged(cb: (missionId: string) => void): () => void;
  /** Native file picker opened by Rust; `null` = cancelled. */
  pickManifests(): Promise<ImportPreview | null>;
  confirmImport(importId: string): Promise<ImportReport>;
  cancelImport(importId: string): Promise<void>;
  /**
   * Rust started reading files: dropped on the window, or just chosen in the file picker
   * (`pickManifests` reads them through the same flow).
   */
  onImportStarted(cb: (files: string[]) => void): () => void;
  /**
   * How far reading, validating or writing has come, in bytes of the manifest files;
   * `import_id` is null while files are previewed and set while a confirmed import writes.
   */
  onImportProgress(cb: (p: ImportProgress) => void): () => void;
  /** The preview of dropped files is ready. */
  onImportPreview(cb: (p: ImportPreview) => void): () => void;
  /**
   * Dropped files could not be previewed at all (for example, the database is unavailable).
   * May come without an `onImportStarted` before it.
   */
  onImportFailed(cb: (error: AppError) => void): () => void;
  /** An import changed the library. */
  onLibraryChanged(cb: () => void): () => void;
  /**
   * One page of approvals waiting for a human (`pendingOnly`), or of every approval, decided ones
   * included; with the exact number waiting in all.
   */
  listApprovals(pendingOnly: boolean, after: string | null, limit: number): Promise<ApprovalPage>;
  /** Approves or denies one approval; resolves with it as decided. */
  decideApproval(request: DecideApproval): Promise<ApprovalItem>;
  /** One page of the audit log, newest first. */
  auditPage(query: AuditQuery): Promise<AuditPage>;
  /** Checks the whole audit log's hash chain and signatures. */
  auditVerify(): Promise<VerifyReport>;
  /** Approvals were added, decided or expired; `pending` is how many wait now. */
  onApprovalsChanged(cb: (p: ApprovalsChanged) => void): () => void;
  /** Called once when the first library page is on screen (startup metric). */
  libraryRendered(count: number): void;
  /** A fresh UUID. */
  newRequestId(): string;
}
