// The pair builder: picking a category picks its starter and shows its description. Delegated
// from the document, because htmx swaps the builder form in place after each action.
document.addEventListener("change", (event) => {
  const category = event.target;
  if (category.id !== "pair-category") return;
  const starter = document.getElementById("pair-starter");
  if (starter && [...starter.options].some((o) => o.value === category.value)) starter.value = category.value;
  const description = document.getElementById("category-description");
  const chosen = category.selectedOptions[0];
  if (description && chosen) description.textContent = chosen.dataset.description || "";
});
