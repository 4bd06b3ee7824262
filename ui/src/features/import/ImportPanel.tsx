import { useId } from "react";
import type { ImportPreview, ImportProgress, ImportReport, ImportStatus } from "../../bindings";
import { formatBytes, formatCount, plural } from "../../format";
import { ErrorNotice } from "../../shared/ErrorNotice";
import { ProblemsTable } from "../../shared/ProblemsTable";
import type { ImportSession } from "./useImportSession";

export const ITEMS_SHOWN = 500;

interface Props {
  session: ImportSession;
  /** Id for the panel's heading, so an overlay can be labelled by it. */
  titleId?: string;
}

/** Manifest import: pick or drop files, watch progress, review the preview, confirm or cancel. */
export function ImportPanel({ session, titleId }: Props) {
  const { stage, progress } = session;
  const fallbackId = useId();
  const headingId = titleId ?? fallbackId;
  const busy = stage.kind === "picking" || stage.kind === "reading" || stage.kind === "confirming";

  return (
    <section className="import" aria-labelledby={headingId}>
      <h2 id={headingId}>Import manifests</h2>
      {(stage.kind === "idle" || stage.kind === "picking" || stage.kind === "done" || (stage.kind === "error" && !stage.preview)) && (
        <div className="dropzone">
          <p className="drop-hint">Drop manifest files anywhere on this window</p>
          <p className="muted">or</p>
          <button type="button" className="btn btn-primary" onClick={session.pick} disabled={busy}>
            {stage.kind === "picking" ? "Waiting for the file picker…" : "Choose manifest files…"}
          </button>
          <p className="muted small">
            JSON manifests ({"{"}"manifest_version": 1, "templates": […]{"}"}). Everything is checked first; nothing is written until you confirm.
          </p>
        </div>
      )}

      {stage.kind === "reading" && (
        <div className="import-reading">
          <p>
            Reading {plural(stage.files.length, "file", "files")}: <span className="mono">{stage.files.map(baseName).join(", ")}</span>
          </p>
          <p className="muted small">The preview opens here when the files are read. Nothing is written until you confirm.</p>
        </div>
      )}

      {progress && busy && <ProgressBar progress={progress} />}
      {busy && !progress && stage.kind !== "picking" && (
        <p className="muted" role="status">
          {stage.kind === "confirming" ? "Importing…" : "Reading…"}
        </p>
      )}

      {stage.kind === "error" && (
        <>
          <ErrorNotice error={stage.error} />
          <div className="actions">
            {stage.preview && (
              <button type="button" className="btn" onClick={session.backToPreview}>
                Back to the preview
              </button>
            )}
            <button type="button" className="btn" onClick={session.reset}>
              Start over
            </button>
          </div>
        </>
      )}

      {(stage.kind === "preview" || stage.kind === "confirming") && (
        <PreviewView preview={stage.preview} confirming={stage.kind === "confirming"} onConfirm={session.confirm} onCancel={session.cancel} />
      )}

      {stage.kind === "done" && <ReportView report={stage.report} onDone={session.reset} />}
    </section>
  );
}

const PHASES: Record<ImportProgress["phase"], string> = {
  reading: "Reading files",
  validating: "Validating templates",
  writing: "Writing to the library",
  done: "Done",
};

/** Every phase counts bytes of the manifest files. */
function ProgressBar({ progress }: { progress: ImportProgress }) {
  const { phase, done, total } = progress;
  const text = total > 0 ? `${PHASES[phase]}: ${formatBytes(done)} of ${formatBytes(total)}` : `${PHASES[phase]}…`;
  const percent = total > 0 ? Math.min(100, (done / total) * 100) : 0;
  return (
    <div className="progress-wrap">
      <div
        className="progress"
        role="progressbar"
        aria-label={PHASES[phase]}
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={done}
        aria-valuetext={text}
        data-testid="import-progress"
      >
        <div className="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      <p className="muted small">{text}</p>
    </div>
  );
}

const STATUS_LABEL: Record<ImportStatus, string> = { new: "New", updated: "Updated", unchanged: "Unchanged" };

function PreviewView({
  preview,
  confirming,
  onConfirm,
  onCancel,
}: {
  preview: ImportPreview;
  confirming: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const whyId = useId();
  const problems = preview.problems.length;
  const nothingToDo = preview.new + preview.updated === 0;
  const blocked = problems > 0 || nothingToDo;
  const shown = preview.items.slice(0, ITEMS_SHOWN);
  const more = preview.items.length - shown.length;

  return (
    <div className="preview" data-testid="import-preview">
      <h3>Files</h3>
      <ul className="file-list" aria-label="Files">
        {preview.files.map((f) => (
          <li key={f.path} title={f.path}>
            <span className="mono">{f.name}</span> <span className="muted">{formatBytes(f.bytes)}</span>
          </li>
        ))}
      </ul>

      <div className="counts">
        <div className="count count-new">
          <span className="count-value" data-testid="count-new">
            {formatCount(preview.new)}
          </span>
          <span className="count-label">New</span>
        </div>
        <div className="count count-updated">
          <span className="count-value" data-testid="count-updated">
            {formatCount(preview.updated)}
          </span>
          <span className="count-label">Updated</span>
        </div>
        <div className="count count-unchanged">
          <span className="count-value" data-testid="count-unchanged">
            {formatCount(preview.unchanged)}
          </span>
          <span className="count-label">Unchanged</span>
        </div>
      </div>

      {/* Problems first: they decide whether anything can be imported. */}
      {problems > 0 && (
        <>
          <h3 className="problems-heading">{plural(problems, "problem", "problems")}</h3>
          <ProblemsTable problems={preview.problems} testId="import-problems" />
        </>
      )}

      {preview.items.length > 0 && (
        <>
          <h3>Templates</h3>
          <div className="table-scroll items-scroll">
            <table className="table items" data-testid="import-items">
              <thead>
                <tr>
                  <th scope="col">Template</th>
                  <th scope="col">Id</th>
                  <th scope="col">Change</th>
                  <th scope="col" className="num">
                    Version
                  </th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((item) => (
                  <tr key={`${item.id}|${item.source}`}>
                    <td>{item.name}</td>
                    <td className="mono">{item.id}</td>
                    <td>
                      <span className={`status status-${item.status}`}>{STATUS_LABEL[item.status]}</span>
                    </td>
                    <td className="num">v{item.version}</td>
                    <td className="mono" title={item.source}>
                      {baseName(item.source)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more > 0 && <p className="muted">and {formatCount(more)} more</p>}
        </>
      )}

      <div className="actions">
        <button type="button" className="btn" data-testid="cancel-import" onClick={onCancel} disabled={confirming}>
          Cancel
        </button>
        <button
          type="button"
          className="btn btn-primary"
          data-testid="confirm-import"
          onClick={onConfirm}
          disabled={blocked || confirming}
          aria-describedby={blocked ? whyId : undefined}
        >
          {confirming ? "Importing…" : "Confirm import"}
        </button>
        {blocked && (
          <p id={whyId} className={problems > 0 ? "why why-problems" : "why"}>
            {problems > 0
              ? "Fix the problems above; nothing has been imported."
              : "Nothing to import: every template in these files is already in the library unchanged."}
          </p>
        )}
      </div>
    </div>
  );
}

function ReportView({ report, onDone }: { report: ImportReport; onDone: () => void }) {
  return (
    <div className="notice notice-success" role="status" data-testid="import-report">
      <p className="notice-title">{report.dry_run ? "Dry run finished: nothing was written" : "Import finished"}</p>
      <p>{reportLine(report)}</p>
      <button type="button" className="btn" onClick={onDone}>
        Done
      </button>
    </div>
  );
}

export function reportLine(r: ImportReport): string {
  const line = `${formatCount(r.new)} new, ${formatCount(r.updated)} updated, ${formatCount(r.unchanged)} unchanged templates`;
  return r.dry_run ? `${line} checked` : `${line} imported`;
}

function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}
