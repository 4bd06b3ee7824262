import type { AppError, ErrorCode, ErrorDetails } from "./bindings";

export type Severity = "error" | "warning";

export interface ErrorWording {
  /** A short headline a person understands without the message. */
  title: string;
  /** What to do next. */
  whatToDo: string;
  severity: Severity;
}

/**
 * The one table from error code to wording. `ErrorCode` (generated from the Rust enum) is the
 * closed list, so a code added or removed there fails the type check here until it is worded.
 */
export const ERROR_WORDING: Record<ErrorCode, ErrorWording> = {
  invalid_manifest: {
    title: "The manifest is not valid",
    whatToDo: "Fix the problems listed below in the manifest file, then import it again. Nothing was imported.",
    severity: "warning",
  },
  unknown_sector: {
    title: "Unknown sector",
    whatToDo: "Use a sector that exists in the library, or ask an admin to add it to the sector catalogue.",
    severity: "warning",
  },
  unknown_category: {
    title: "Unknown category",
    whatToDo: "Use a category listed under the sector, or ask an admin to add it to the sector catalogue.",
    severity: "warning",
  },
  template_not_found: {
    title: "Template not found",
    whatToDo: "The template may have been replaced by an import. Reload the library and pick it again.",
    severity: "warning",
  },
  version_not_found: {
    title: "Template version not found",
    whatToDo: "Reload the library and pick the template again to use its current version.",
    severity: "warning",
  },
  template_changed: {
    title: "The template changed while you were configuring it",
    whatToDo: "Cancel this dialog and press Quick Deploy again to configure the current version. Nothing was saved.",
    severity: "warning",
  },
  perimeter_out_of_range: {
    title: "A value is outside the allowed range",
    whatToDo: "Bring the value back within the cap shown next to it, then save again. Nothing was saved.",
    severity: "warning",
  },
  unknown_connection: {
    title: "That sector connection cannot be granted",
    whatToDo: "Untick the connection and save again; only connections the template declares can be granted.",
    severity: "warning",
  },
  invalid_request: {
    title: "The request was refused",
    whatToDo: "Cancel, open the dialog again and retry. If it keeps happening, report this message.",
    severity: "error",
  },
  import_not_found: {
    title: "This import is no longer available",
    whatToDo: "Choose or drop the manifest files again to get a fresh preview. Nothing was imported.",
    severity: "warning",
  },
  storage: {
    title: "The library database could not be used",
    whatToDo: "Check that the disk has free space and that no other program holds the database, then retry. Nothing was changed.",
    severity: "error",
  },
  config: {
    title: "The app's configuration is invalid",
    whatToDo: "Fix the configuration file named in the message, then restart Mission Control.",
    severity: "error",
  },
  internal: {
    title: "Something went wrong inside Mission Control",
    whatToDo: "Retry. If it happens again, restart the app and report this message.",
    severity: "error",
  },
  dialog: {
    title: "The file picker could not be opened",
    whatToDo: "Try again, or drag the manifest files onto this window instead.",
    severity: "warning",
  },
  approval_not_found: {
    title: "This approval no longer exists",
    whatToDo: "Refresh the list; its mission may have ended or been removed. Nothing was decided.",
    severity: "warning",
  },
  approval_decided: {
    title: "Someone already decided this approval",
    whatToDo: "Refresh the list to see the decision that stands. Yours was not recorded.",
    severity: "warning",
  },
  approval_expired: {
    title: "This approval has expired",
    whatToDo: "The call will not run. If it is still needed, the agent must make it again to ask for a fresh approval. Nothing was decided.",
    severity: "warning",
  },
  budget_out_of_range: {
    title: "The new budget is outside the allowed range",
    whatToDo: "Enter a budget above the current one and no higher than the global policy's cap, then press Raise budget again. Nothing was changed.",
    severity: "warning",
  },
  mission_not_found: {
    title: "Mission not found",
    whatToDo: "The mission may have been removed. Refresh the list and choose another mission.",
    severity: "warning",
  },
  audit_unavailable: {
    title: "The audit log cannot be read",
    whatToDo: "Check that the audit signing key is in the system keychain and that the app's data folder is readable, then retry. Until then the log cannot be shown or verified.",
    severity: "error",
  },
  mission_not_active: {
    title: "The mission cannot do that now",
    whatToDo:
      "Refresh the list to see the mission's status now: only a Ready mission can be deployed, and only a Running or Paused one stopped. Nothing was changed.",
    severity: "warning",
  },
  kafka_unavailable: {
    title: "Kafka is not available",
    whatToDo:
      "Missions can still be saved, but no squad runs until Kafka answers; running missions wait and resume then. Check the Kafka settings (config/kafka.json or KAFKA_BOOTSTRAP_SERVERS) and restart Mission Control if it does not recover.",
    severity: "warning",
  },
  unknown_department: {
    title: "That department is not part of the mission's squad",
    whatToDo: "Choose one of the departments the mission's template requires. Nothing was issued.",
    severity: "warning",
  },
  malformed_call: {
    title: "The call names an id that cannot be right",
    whatToDo: "Tool, job and mission ids are printable text of at most 200 characters, without control characters such as NUL. Nothing ran.",
    severity: "warning",
  },
  tool_not_in_ruleset: {
    title: "The tool is not in the mission's ruleset",
    whatToDo: "Only the tools the template version's ruleset lists can be called; import a new version of the template that allows it and deploy that. Nothing ran.",
    severity: "warning",
  },
  dept_not_in_squad: {
    title: "That department is not part of the mission's squad",
    whatToDo: "Call with the token of one of the departments the template requires. Nothing ran.",
    severity: "warning",
  },
  call_in_progress: {
    title: "A call with this idempotency key is still running",
    whatToDo: "Wait and send the same call again: once it finishes, the repeat returns its outcome. Nothing ran twice.",
    severity: "warning",
  },
  idempotency_key_reused: {
    title: "The idempotency key belongs to another call",
    whatToDo: "A key names one call: the same tool with the same arguments. Use a new key for a different call. Nothing ran.",
    severity: "warning",
  },
  route_not_found: {
    title: "The agent API has no such endpoint",
    whatToDo: "Agents call POST /v1/tools/{tool_id}/invoke; the API's description is at GET /v1/openapi.json. Nothing ran.",
    severity: "warning",
  },
  method_not_allowed: {
    title: "The agent API does not serve that method there",
    whatToDo: "Tool calls are POST requests and the API description is a GET. Nothing ran.",
    severity: "warning",
  },
  unauthenticated: {
    title: "The call had no valid token",
    whatToDo: "Use the token issued for this mission's department; a mission that ended or was re-assembled issues new ones. Nothing ran.",
    severity: "warning",
  },
  mission_expired: {
    title: "The mission's time to live has passed",
    whatToDo: "Deploy the template again with a longer time to live if the work is still needed. Nothing ran.",
    severity: "warning",
  },
  unknown_tool: {
    title: "No tool has that id",
    whatToDo: "Check the tool id against the tool catalogue. Nothing ran.",
    severity: "warning",
  },
  invalid_arguments: {
    title: "The call's arguments were refused",
    whatToDo: "Send the arguments as a JSON object the tool can price (at most 64 KiB). Nothing ran.",
    severity: "warning",
  },
  sector_denied: {
    title: "The tool's sector is not open to this mission",
    whatToDo: "Only the mission's own sector and the connections granted on Save are open. Deploy again with the connection ticked if it is needed. Nothing ran.",
    severity: "warning",
  },
  host_not_allowed: {
    title: "The tool's host is not on the allowlist",
    whatToDo: "Ask an admin to add the host to the gateway's allowlist if it should be reachable. Nothing ran.",
    severity: "warning",
  },
  steps_exhausted: {
    title: "The mission used all its steps",
    whatToDo: "The mission stops at its step cap. Deploy it again with more steps if the work is not done.",
    severity: "warning",
  },
  budget_exhausted: {
    title: "The mission reached its budget",
    whatToDo: "Open Approvals to raise the budget (up to the global cap) or to stop the mission.",
    severity: "warning",
  },
  budget_reserved: {
    title: "Calls in flight hold the rest of the budget",
    whatToDo: "Wait for the calls in flight to finish, then retry. Nothing ran.",
    severity: "warning",
  },
  approval_denied: {
    title: "A reviewer denied this call",
    whatToDo: "The call will not run. Change the plan or ask the reviewer. Nothing ran.",
    severity: "warning",
  },
  tool_failed: {
    title: "The tool ran and failed",
    whatToDo: "Nothing was charged. Check the tool's service and retry.",
    severity: "error",
  },
};

export function wordingFor(code: string): ErrorWording {
  return isErrorCode(code) ? ERROR_WORDING[code] : ERROR_WORDING.internal;
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_WORDING, code);
}

const NO_DETAILS: ErrorDetails = { field: null, limit: null, problems: [], audit_seq: null };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/**
 * Turns whatever a rejected promise carried into an `AppError`. The platform rejects with
 * `AppError`s; anything else (a bug, a missing command) becomes an `internal` error.
 */
export function toAppError(e: unknown): AppError {
  if (isRecord(e) && typeof e.code === "string" && typeof e.message === "string") {
    const details = isRecord(e.details) ? e.details : {};
    return {
      code: isErrorCode(e.code) ? e.code : "internal",
      message: e.message,
      details: {
        field: typeof details.field === "string" ? details.field : null,
        limit: typeof details.limit === "number" ? details.limit : null,
        problems: Array.isArray(details.problems) ? details.problems : [],
        audit_seq: typeof details.audit_seq === "number" ? details.audit_seq : null,
      },
    };
  }
  if (e instanceof Error) {
    return { code: "internal", message: e.message, details: NO_DETAILS };
  }
  if (typeof e === "string") {
    return { code: "internal", message: e, details: NO_DETAILS };
  }
  return { code: "internal", message: "An unexpected error occurred.", details: NO_DETAILS };
}
