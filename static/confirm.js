// Asks before a destructive plain form post: a form (or its submit button) with data-confirm="question".
// htmx forms ask through htmx:confirm (workbench.js); this is for the pages that post normally.
document.addEventListener("submit", (e) => {
  const ask = (e.submitter && e.submitter.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
  if (ask && !window.confirm(ask)) e.preventDefault();
});
