import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { ErrorCode } from "../bindings";
import { ERROR_WORDING, toAppError, wordingFor } from "../errors";
import { appError, makeProblem } from "../test/fakePlatform";
import { ErrorNotice } from "./ErrorNotice";

describe("ErrorNotice", () => {
  it("shows the title, the message and what to do for the code", () => {
    render(<ErrorNotice error={appError("template_changed", 'template "tpl-1" is at version 4 now, not 3')} />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("The template changed while you were configuring it");
    expect(alert).toHaveTextContent('template "tpl-1" is at version 4 now, not 3');
    expect(alert).toHaveTextContent("What to do: Cancel this dialog and press Quick Deploy again");
    expect(alert).toHaveClass("notice-warning");
  });

  it("lists the problems in the details", () => {
    render(<ErrorNotice error={appError("invalid_manifest", "2 problems", [makeProblem(), makeProblem({ template_id: "tpl-2", pointer: "/templates/1/name" })])} />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("The manifest is not valid");
    const rows = within(alert).getAllByRole("row");
    expect(rows).toHaveLength(3);
    expect(within(alert).getByText("/templates/1/name")).toBeInTheDocument();
  });

  it("words an unknown code as an internal error, never as raw JSON", () => {
    render(<ErrorNotice error={toAppError({ code: "brand_new_code", message: "boom", details: {} })} />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("Something went wrong inside Mission Control");
    expect(alert).toHaveTextContent("boom");
    expect(alert).not.toHaveTextContent("{");
  });
});

describe("the error table", () => {
  it("has a title and a next step for every code, and no others", () => {
    // Written out by hand: the compiler refuses this object if a generated code is missing or extra.
    const every: Record<ErrorCode, true> = {
      invalid_manifest: true,
      unknown_sector: true,
      unknown_category: true,
      template_not_found: true,
      version_not_found: true,
      template_changed: true,
      perimeter_out_of_range: true,
      unknown_connection: true,
      invalid_request: true,
      import_not_found: true,
      storage: true,
      config: true,
      internal: true,
      dialog: true,
      approval_not_found: true,
      approval_decided: true,
      approval_expired: true,
      budget_out_of_range: true,
      mission_not_found: true,
      audit_unavailable: true,
      mission_not_active: true,
      kafka_unavailable: true,
      unknown_department: true,
      route_not_found: true,
      tool_not_in_ruleset: true,
      malformed_call: true,
      dept_not_in_squad: true,
      call_in_progress: true,
      idempotency_key_reused: true,
      method_not_allowed: true,
      unauthenticated: true,
      mission_expired: true,
      unknown_tool: true,
      invalid_arguments: true,
      sector_denied: true,
      host_not_allowed: true,
      steps_exhausted: true,
      budget_exhausted: true,
      budget_reserved: true,
      approval_denied: true,
      tool_failed: true,
    };
    const codes = Object.keys(ERROR_WORDING);
    expect(codes.sort()).toEqual(Object.keys(every).sort());
    for (const code of codes) {
      expect(wordingFor(code).title.length).toBeGreaterThan(5);
      expect(wordingFor(code).whatToDo.length).toBeGreaterThan(10);
    }
  });

  it("turns thrown values into AppErrors", () => {
    expect(toAppError(new Error("invoke failed"))).toEqual({
      code: "internal",
      message: "invoke failed",
      details: { field: null, limit: null, problems: [], audit_seq: null },
    });
    expect(toAppError(appError("storage", "locked")).code).toBe("storage");
    expect(toAppError("plain text").message).toBe("plain text");
  });
});
