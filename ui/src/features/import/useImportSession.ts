import { useCallback, useEffect, useRef, useState } from "react";
import type { AppError, ImportPreview, ImportProgress, ImportReport } from "../../bindings";
import { toAppError } from "../../errors";
import { usePlatform } from "../../platform/context";

export type ImportStage =
  | { kind: "idle" }
  | { kind: "picking" }
  /**
   * The shell is reading and validating files: dropped on the window, or chosen in the picker
   * (whose command then resolves with the preview).
   */
  | { kind: "reading"; files: string[]; source: "drop" | "picker" }
  | { kind: "preview"; preview: ImportPreview }
  | { kind: "confirming"; preview: ImportPreview }
  | { kind: "done"; preview: ImportPreview; report: ImportReport }
  | { kind: "error"; error: AppError; preview: ImportPreview | null };

export interface ImportSession {
  stage: ImportStage;
  progress: ImportProgress | null;
  /** Files were dropped on the window since the last time the overlay was dismissed. */
  fromDrop: boolean;
  pick: () => void;
  confirm: () => void;
  cancel: () => void;
  /** Back to the start (after a report or an error). */
  reset: () => void;
  /** After a failed confirm: show the preview again, to retry. */
  backToPreview: () => void;
}

/** A staged import the shell keeps until it is confirmed or cancelled, and nothing else uses. */
function pendingPreview(stage: ImportStage): ImportPreview | null {
  return stage.kind === "preview" || stage.kind === "error" ? stage.preview : null;
}

/** Whether the picker's command is still the one to settle the stage. */
function pickerOwns(stage: ImportStage): boolean {
  return stage.kind === "picking" || (stage.kind === "reading" && stage.source === "picker");
}

/** Progress reports for previews carry no import id; those of a confirmed import carry its id. */
function progressBelongs(stage: ImportStage, p: ImportProgress): boolean {
  switch (stage.kind) {
    case "picking":
    case "reading":
      return p.import_id === null;
    case "confirming":
      return p.import_id === stage.preview.import_id;
    default:
      return false;
  }
}

/**
 * One import at a time, from the file picker or from files dropped on the window. The shell
 * keeps a previewed import until it is confirmed or cancelled, so a preview that is replaced
 * or abandoned is cancelled here.
 */
export function useImportSession(): ImportSession {
  const platform = usePlatform();
  const [stage, setStageState] = useState<ImportStage>({ kind: "idle" });
  const [progress, setProgress] = useState<ImportProgress | null>(null);
  const [fromDrop, setFromDrop] = useState(false);
  const stageRef = useRef(stage);

  const setStage = useCallback((next: ImportStage) => {
    stageRef.current = next;
    setStageState(next);
  }, []);

  const release = useCallback(
    (preview: ImportPreview | null) => {
      if (preview) platform.cancelImport(preview.import_id).catch(() => undefined);
    },
    [platform],
  );

  useEffect(() => {
    const offStarted = platform.onImportStarted((files) => {
      const current = stageRef.current;
      setProgress(null);
      if (current.kind === "picking") {
        // The files just chosen in the picker: its command reads them through the same flow.
        setStage({ kind: "reading", files, source: "picker" });
        return;
      }
      release(pendingPreview(current));
      setFromDrop(true);
      setStage({ kind: "reading", files, source: "drop" });
    });
    const offProgress = platform.onImportProgress((p) => {
      if (progressBelongs(stageRef.current, p)) setProgress(p.phase === "done" ? null : p);
    });
    const offPreview = platform.onImportPreview((preview) => {
      const pending = pendingPreview(stageRef.current);
      if (pending && pending.import_id !== preview.import_id) release(pending);
      setProgress(null);
      setFromDrop(true);
      setStage({ kind: "preview", preview });
    });
    // Dropped files that could not be previewed at all; this may come without a start before it.
    const offFailed = platform.onImportFailed((error) => {
      const current = stageRef.current;
      // A confirm in flight settles the stage itself (and fails the same way without a database).
      if (current.kind === "confirming") return;
      setProgress(null);
      setFromDrop(true);
      // A preview still waiting for a decision stays reachable through "Back to the preview".
      setStage({ kind: "error", error, preview: pendingPreview(current) });
    });
    return () => {
      offStarted();
      offProgress();
      offPreview();
      offFailed();
    };
  }, [platform, release, setStage]);

  const pick = useCallback(() => {
    const before = stageRef.current;
    setStage({ kind: "picking" });
    setProgress(null);
    platform.pickManifests().then(
      (preview) => {
        if (!pickerOwns(stageRef.current)) {
          // A drop overtook the picker; keep the drop and let the picked import go.
          release(preview);
          return;
        }
        setProgress(null);
        if (preview === null) {
          setStage(before.kind === "picking" ? { kind: "idle" } : before);
        } else {
          release(pendingPreview(before));
          setStage({ kind: "preview", preview });
        }
      },
      (e: unknown) => {
        if (!pickerOwns(stageRef.current)) return;
        setProgress(null);
        setStage({ kind: "error", error: toAppError(e), preview: null });
      },
    );
  }, [platform, release, setStage]);

  const confirm = useCallback(() => {
    const current = stageRef.current;
    if (current.kind !== "preview") return;
    const { preview } = current;
    setStage({ kind: "confirming", preview });
    platform.confirmImport(preview.import_id).then(
      (report) => {
        setProgress(null);
        setStage({ kind: "done", preview, report });
      },
      (e: unknown) => {
        setProgress(null);
        setStage({ kind: "error", error: toAppError(e), preview });
      },
    );
  }, [platform, setStage]);

  const cancel = useCallback(() => {
    release(pendingPreview(stageRef.current));
    setProgress(null);
    setFromDrop(false);
    setStage({ kind: "idle" });
  }, [release, setStage]);

  const reset = useCallback(() => {
    const current = stageRef.current;
    if (current.kind === "error") release(current.preview);
    setProgress(null);
    setFromDrop(false);
    setStage({ kind: "idle" });
  }, [release, setStage]);

  const backToPreview = useCallback(() => {
    const current = stageRef.current;
    if (current.kind === "error" && current.preview) setStage({ kind: "preview", preview: current.preview });
  }, [setStage]);

  return { stage, progress, fromDrop, pick, confirm, cancel, reset, backToPreview };
}
