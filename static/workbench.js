/* Trajectory Studio workbench: keyboard shortcuts, the help overlay, and "never lose an edit"
 * (unsaved-change marks, a warning before leaving, and a guard before anything that redraws the
 * document while another form holds unsaved text). The pages work without this file; it only
 * adds to them. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Conflicts (409) and refused input (422) come back as HTML to show in place, not as errors.
  if (window.htmx) {
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "409", swap: true, error: false },
      { code: "422", swap: true, error: false },
      { code: "[45]..", swap: false, error: true },
    ];
  }

  const EDIT_FORMS = "form.step-form, form.region-form";
  const DIRTY_FORMS = "form.step-form.dirty, form.region-form.dirty";

  function isTyping(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // --- unsaved changes ---------------------------------------------------------------------
  function markDirty(form) {
    if (form.classList.contains("dirty")) return;
    form.classList.add("dirty");
    form.querySelectorAll(".dirty-mark").forEach((m) => (m.textContent = "unsaved changes"));
    form.querySelectorAll(".saved-mark").forEach((m) => m.remove());
  }

  function dirtyForms(except) {
    return Array.from(document.querySelectorAll(DIRTY_FORMS)).filter((f) => f !== except);
  }

  function describe(form) {
    const region = form.closest("[aria-label]") || form.closest("section");
    if (region && region.getAttribute("aria-label")) return region.getAttribute("aria-label");
    const kind = form.querySelector(".kind");
    return kind ? kind.textContent.trim() : "a form";
  }

  document.addEventListener("input", (e) => {
    const form = e.target.closest && e.target.closest(EDIT_FORMS);
    if (form) markDirty(form);
  });
  document.addEventListener("change", (e) => {
    const form = e.target.closest && e.target.closest(EDIT_FORMS);
    if (form) markDirty(form);
  });

  window.addEventListener("beforeunload", (e) => {
    if (dirtyForms(null).length) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  // Plain (no htmx) submissions leave the page: the form being sent is not "lost".
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.matches && form.matches(EDIT_FORMS) && !form.hasAttribute("hx-post")) form.classList.remove("dirty");
  });

  // --- guard: nothing that redraws the document while other forms hold unsaved text ---------
  document.addEventListener("htmx:confirm", (e) => {
    const elt = e.detail.elt;
    const submitter = e.detail.triggeringEvent && e.detail.triggeringEvent.submitter;
    const source = submitter || elt;
    const form = elt.closest ? elt.closest("form") : null;
    const redraws = source.hasAttribute && source.hasAttribute("data-replaces-document");
    if (redraws) {
      const others = dirtyForms(form);
      if (others.length) {
        e.preventDefault();
        window.alert("Save or undo your changes first; this would redraw the page:\n\n" +
          others.map((f) => "• " + describe(f)).join("\n"));
        others[0].scrollIntoView({ block: "center" });
        return;
      }
    }
    const ask = submitter && submitter.getAttribute("data-confirm");
    if (ask && !e.detail.question) {
      e.preventDefault();
      if (window.confirm(ask)) e.detail.issueRequest(true);
    }
  });

  // After a step's swap (and htmx's attribute settling) the saved step stays the current one,
  // with the focus, so j / k / Ctrl+S carry on from where the user was working.
  document.addEventListener("htmx:afterSettle", (e) => {
    const t = e.detail.target;
    if (t && t.id) {
      const fresh = document.getElementById(t.id);
      if (fresh && fresh.matches("[data-step]")) {
        setCurrent(fresh, false);
        fresh.focus({ preventScroll: true });
      }
    }
  });
  // A request that failed outright (network, 500) must not look like a save.
  document.addEventListener("htmx:responseError", (e) => {
    const form = e.detail.elt.closest ? e.detail.elt.closest("form") : null;
    if (form) {
      form.querySelectorAll(".dirty-mark").forEach((m) => (m.textContent = "not saved: the server answered " + e.detail.xhr.status));
    }
  });
  document.addEventListener("htmx:sendError", (e) => {
    const form = e.detail.elt.closest ? e.detail.elt.closest("form") : null;
    if (form) form.querySelectorAll(".dirty-mark").forEach((m) => (m.textContent = "not saved: no connection"));
  });

  // --- keyboard -----------------------------------------------------------------------------
  function steps() {
    return Array.from(document.querySelectorAll("[data-step]"));
  }

  function currentStep() {
    const active = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-step]");
    return active || document.querySelector("[data-step].current");
  }

  function setCurrent(step, focus) {
    document.querySelectorAll("[data-step].current").forEach((s) => s.classList.remove("current"));
    if (!step) return;
    step.classList.add("current");
    if (focus) {
      step.focus({ preventScroll: true });
      step.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  function move(by) {
    const all = steps();
    if (!all.length) return;
    const cur = currentStep();
    let i = cur ? all.indexOf(cur) + by : by > 0 ? 0 : all.length - 1;
    i = Math.max(0, Math.min(all.length - 1, i));
    setCurrent(all[i], true);
  }

  function saveCurrent() {
    const step = currentStep();
    const form = step ? step.querySelector("form.step-form") : document.activeElement && document.activeElement.closest(EDIT_FORMS);
    if (!form) return false;
    const button = form.querySelector("button.save");
    if (!button) return false;
    form.requestSubmit(button);
    return true;
  }

  function openHelp() {
    const d = document.getElementById("help");
    if (d && !d.open) d.showModal();
  }

  document.addEventListener("click", (e) => {
    const opener = e.target.closest && e.target.closest("[data-open-help]");
    if (opener) openHelp();
    const step = e.target.closest && e.target.closest("[data-step]");
    if (step) setCurrent(step, false);
  });

  document.addEventListener("keydown", (e) => {
    const typing = isTyping(e.target);
    const mod = e.ctrlKey || e.metaKey;
    if (mod && !e.shiftKey && (e.key === "s" || e.key === "S")) {
      if (saveCurrent()) e.preventDefault();
      return;
    }
    if (mod && e.shiftKey && e.key === "Enter") {
      const submit = document.querySelector("[data-submit-action]");
      if (submit) {
        e.preventDefault();
        if (dirtyForms(null).length) {
          window.alert("Save your changes before submitting.");
        } else if (window.confirm("Submit this trajectory for review?")) {
          submit.click();
        }
      }
      return;
    }
    if (e.altKey && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      move(e.key === "ArrowDown" ? 1 : -1);
      return;
    }
    if (typing || mod || e.altKey) return;
    if (e.key === "j") move(1);
    else if (e.key === "k") move(-1);
    else if (e.key === "?") openHelp();
    else if (e.key === "n") {
      const next = document.querySelector("#next-form");
      if (next) {
        if (dirtyForms(null).length && !window.confirm("Leave with unsaved changes?")) return;
        dirtyForms(null).forEach((f) => f.classList.remove("dirty"));
        next.requestSubmit();
      }
    } else return;
    e.preventDefault();
  });
})();
