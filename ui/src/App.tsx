import { useCallback, useEffect, useRef, useState, type KeyboardEvent } from "react";
import type { TemplateSummary } from "./bindings";
import { ApprovalsView } from "./features/approvals/ApprovalsView";
import { AuditView } from "./features/audit/AuditView";
import { ImportPanel } from "./features/import/ImportPanel";
import { useImportSession } from "./features/import/useImportSession";
import { MissionConfigModal } from "./features/library/MissionConfigModal";
import { MissionLibrary } from "./features/library/MissionLibrary";
import { ActiveMissions } from "./features/missions/ActiveMissions";
import { usePlatform } from "./platform/context";
import { Modal } from "./shared/Modal";

type Tab = "library" | "missions" | "approvals" | "audit" | "import";

const TABS: { id: Tab; label: string }[] = [
  { id: "library", label: "Library" },
  { id: "missions", label: "Active Missions" },
  { id: "approvals", label: "Approvals" },
  { id: "audit", label: "Audit" },
  { id: "import", label: "Import" },
];

export function App() {
  const [tab, setTab] = useState<Tab>("library");
  const [deploying, setDeploying] = useState<{ template: TemplateSummary; opening: number } | null>(null);
  const [missionsToken, setMissionsToken] = useState(0);
  const [overlayDismissed, setOverlayDismissed] = useState(false);
  const searchRef = useRef<HTMLInputElement>(null);
  const tabRefs = useRef(new Map<Tab, HTMLButtonElement>());
  const openings = useRef(0);
  const importSession = useImportSession();
  const pendingApprovals = usePendingApprovals();

  // Ctrl/Cmd+K: to the search box, from anywhere but an open dialog.
  useEffect(() => {
    function onKey(e: globalThis.KeyboardEvent) {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "k") {
        if (deploying) return;
        e.preventDefault();
        setTab("library");
        // The library panel becomes visible on the next render.
        requestAnimationFrame(() => {
          searchRef.current?.focus();
          searchRef.current?.select();
        });
      }
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [deploying]);

  // A drop shows the import as an overlay over whatever tab is open.
  const { stage, fromDrop } = importSession;
  useEffect(() => {
    // A new drop, a preview that needs a decision, or a failure brings a hidden overlay back.
    if (stage.kind === "reading" || stage.kind === "preview" || stage.kind === "error") setOverlayDismissed(false);
  }, [stage]);
  const overlay = fromDrop && tab !== "import" && stage.kind !== "idle" && !overlayDismissed;

  const onDeploy = useCallback((template: TemplateSummary) => {
    openings.current += 1;
    setDeploying({ template, opening: openings.current });
  }, []);

  function onTabKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    const index = TABS.findIndex((t) => t.id === tab);
    let next = -1;
    if (e.key === "ArrowRight") next = (index + 1) % TABS.length;
    else if (e.key === "ArrowLeft") next = (index - 1 + TABS.length) % TABS.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = TABS.length - 1;
    const target = TABS[next];
    if (!target) return;
    e.preventDefault();
    setTab(target.id);
    tabRefs.current.get(target.id)?.focus();
  }

  const modalOpen = deploying !== null || overlay;

  return (
    <div className="app">
      <div className="app-shell" inert={modalOpen}>
        <header className="topbar">
          <h1 className="brand">Mission Control</h1>
          <div role="tablist" aria-label="Sections" className="tabs" onKeyDown={onTabKeyDown}>
            {TABS.map((t) => (
              <button
                key={t.id}
                ref={(el) => {
                  if (el) tabRefs.current.set(t.id, el);
                  else tabRefs.current.delete(t.id);
                }}
                type="button"
                role="tab"
                id={`tab-${t.id}`}
                aria-selected={tab === t.id}
                aria-controls={`panel-${t.id}`}
                tabIndex={tab === t.id ? 0 : -1}
                className={`tab ${tab === t.id ? "tab-on" : ""}`}
                data-testid={`tab-${t.id}`}
                onClick={() => setTab(t.id)}
              >
                {t.label}
                {t.id === "approvals" && pendingApprovals > 0 && (
                  <>
                    {" "}
                    <span className="tab-badge" aria-hidden="true" data-testid="approvals-badge">
                      {pendingApprovals}
                    </span>
                    <span className="visually-hidden">({pendingApprovals})</span>
                  </>
                )}
                {t.id === "import" && stage.kind !== "idle" && stage.kind !== "done" && (
                  <>
                    <span className="tab-dot" aria-hidden="true" />
                    <span className="visually-hidden"> (in progress)</span>
                  </>
                )}
              </button>
            ))}
          </div>
          <span className="topbar-hint muted">
            <kbd>Ctrl</kbd>+<kbd>K</kbd> search
          </span>
        </header>
        <main className="content">
          <div role="tabpanel" id="panel-library" aria-labelledby="tab-library" hidden={tab !== "library"} className="panel">
            <MissionLibrary onDeploy={onDeploy} searchRef={searchRef} />
          </div>
          <div role="tabpanel" id="panel-missions" aria-labelledby="tab-missions" hidden={tab !== "missions"} className="panel">
            <ActiveMissions visible={tab === "missions"} refreshToken={missionsToken} />
          </div>
          <div role="tabpanel" id="panel-approvals" aria-labelledby="tab-approvals" hidden={tab !== "approvals"} className="panel">
            <ApprovalsView visible={tab === "approvals"} />
          </div>
          <div role="tabpanel" id="panel-audit" aria-labelledby="tab-audit" hidden={tab !== "audit"} className="panel">
            <AuditView visible={tab === "audit"} />
          </div>
          <div role="tabpanel" id="panel-import" aria-labelledby="tab-import" hidden={tab !== "import"} className="panel">
            {tab === "import" && <ImportPanel session={importSession} />}
          </div>
        </main>
      </div>

      {deploying && (
        <MissionConfigModal
          key={deploying.opening}
          templateId={deploying.template.id}
          templateName={deploying.template.name}
          onClose={() => setDeploying(null)}
          onSaved={() => setMissionsToken((n) => n + 1)}
        />
      )}

      {overlay && !deploying && (
        <Modal
          labelledBy="import-overlay-title"
          onEscape={() => {
            if (stage.kind === "preview") importSession.cancel();
            else setOverlayDismissed(true);
          }}
          testId="import-overlay"
          className="import-modal"
        >
          <ImportPanel session={importSession} titleId="import-overlay-title" />
          {stage.kind !== "preview" && stage.kind !== "confirming" && (
            <div className="modal-actions">
              <button type="button" className="btn" onClick={() => (stage.kind === "reading" ? setOverlayDismissed(true) : importSession.reset())}>
                {stage.kind === "reading" ? "Hide" : "Close"}
              </button>
            </div>
          )}
        </Modal>
      )}
    </div>
  );
}

/**
 * How many approvals wait, for the tab's badge: counted once at start, then taken from every
 * approvals-changed event. A failed count shows no badge; the Approvals view shows the error.
 */
function usePendingApprovals(): number {
  const platform = usePlatform();
  const [pending, setPending] = useState(0);
  useEffect(() => {
    let current = true;
    // An event carries a newer count than a first load still on its way.
    let heard = false;
    const off = platform.onApprovalsChanged((p) => {
      heard = true;
      setPending(p.pending);
    });
    // Only the exact count is needed, not the requests themselves.
    platform.listApprovals(true, null, 1).then(
      (page) => {
        if (current && !heard) setPending(page.pending);
      },
      () => undefined,
    );
    return () => {
      current = false;
      off();
    };
  }, [platform]);
  return pending;
}
