import type { AppError } from "../bindings";
import { wordingFor } from "../errors";
import { ProblemsTable } from "./ProblemsTable";

interface Props {
  error: AppError;
  onRetry?: () => void;
  retryLabel?: string;
}

/** One error, as a person should read it: what happened, the core's message, what to do next. */
export function ErrorNotice({ error, onRetry, retryLabel = "Retry" }: Props) {
  const wording = wordingFor(error.code);
  const problems = error.details?.problems ?? [];
  return (
    <div className={`notice notice-${wording.severity}`} role="alert" data-testid="error-notice" data-code={error.code}>
      <p className="notice-title">{wording.title}</p>
      {error.message && error.message !== wording.title && <p className="notice-message">{error.message}</p>}
      <p className="notice-next">
        <span className="notice-next-label">What to do: </span>
        {wording.whatToDo}
      </p>
      {problems.length > 0 && <ProblemsTable problems={problems} />}
      {onRetry && (
        <button type="button" className="btn" onClick={onRetry}>
          {retryLabel}
        </button>
      )}
    </div>
  );
}
