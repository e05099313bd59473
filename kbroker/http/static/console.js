// kbroker console: a little JavaScript, served by the broker (no CDN, no build step).
// - pages that show live figures can reload every 5 s (an opt-in checkbox, remembered);
// - <input class="row-filter" data-table="ID"> hides the rows of table ID that do not match.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input.row-filter")) {
    const table = document.getElementById(input.dataset.table);
    input.addEventListener("input", () => {
      const needle = input.value.toLowerCase();
      for (const row of table.tBodies[0].rows) {
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      }
    });
  }
  if (document.body.dataset.refresh !== "on") return;
  const box = document.createElement("label");
  box.className = "refresh";
  box.innerHTML = '<input type="checkbox" id="auto-refresh"> refresh every 5 s';
  document.body.appendChild(box);
  const check = box.querySelector("input");
  check.checked = localStorage.getItem("kbroker.refresh") === "on";
  check.addEventListener("change", () => {
    localStorage.setItem("kbroker.refresh", check.checked ? "on" : "off");
  });
  setInterval(() => {
    const typing = document.activeElement && document.activeElement.tagName === "INPUT"
      && document.activeElement.type !== "checkbox";
    if (check.checked && !typing) location.reload();
  }, 5000);
});
