/* Tables on a narrow screen (a phone held upright): a table that does not fit its column becomes a list of cards,
   one card per row, each cell under its column's name, the outcome or verdict first. A table that fits stays a
   table, and nothing changes on a wide screen. The column names come from the table's own header rows (a header
   cell spanning several columns names each of them). */
(function () {
  const NARROW = 600;   // px: below this width a table that overflows its column collapses into cards

  function columnNames(table) {
    const rows = table.tHead ? Array.from(table.tHead.rows) : [];
    const names = [];
    for (const row of rows) {
      let col = 0;
      for (const cell of row.cells) {
        const span = cell.colSpan || 1, text = cell.innerText.trim();
        for (let i = 0; i < span; i++, col++) {
          if (text && !(names[col] || []).includes(text)) (names[col] = names[col] || []).push(text);
        }
      }
    }
    return names.map(parts => (parts || []).join(" · "));
  }

  function label(table) {
    if (table.dataset.kslLabelled) return;
    const names = columnNames(table);
    for (const body of table.tBodies) {
      for (const row of body.rows) {
        let col = 0;
        for (const cell of row.cells) {
          const name = names[col] || "";
          if (name) cell.setAttribute("data-label", name);
          col += cell.colSpan || 1;
        }
      }
    }
    table.dataset.kslLabelled = "1";
  }

  function layout() {
    const narrow = document.documentElement.clientWidth < NARROW;
    for (const table of document.querySelectorAll(".bd-article table")) {
      table.classList.remove("ksl-cards");
      if (!narrow || !table.tHead) continue;
      const box = table.parentElement;   // the table's own scroll container, or the column
      if (table.getBoundingClientRect().width > box.clientWidth + 1) {
        label(table);
        table.classList.add("ksl-cards");
      }
    }
  }

  // A caption's run details ("Run: profile ...; model ...; budget ...": kslottery.report.figstyle.caption_context)
  // fold into one line, opened by a click: the caption itself stays at what a reader needs to read the figure.
  function foldRuns() {
    for (const caption of document.querySelectorAll(".bd-article figcaption, .bd-article table caption")) {
      if (caption.querySelector(".ksl-run")) continue;
      const walk = document.createTreeWalker(caption, NodeFilter.SHOW_TEXT);
      let node;
      while ((node = walk.nextNode()) && !node.nodeValue.includes("Run: ")) {}
      if (!node) continue;
      const run = document.createElement("span");
      run.className = "ksl-run";
      run.title = "the run behind it (click to open)";
      run.appendChild(document.createTextNode(node.nodeValue.slice(node.nodeValue.indexOf("Run: "))));
      node.nodeValue = node.nodeValue.slice(0, node.nodeValue.indexOf("Run: "));
      // what follows "Run: " in the same parent moves in too, up to a link of the caption's own (CSV, permalink)
      let next = node.nextSibling;
      while (next && !(next.classList && (next.classList.contains("csv-link") || next.classList.contains("headerlink")))) {
        const after = next.nextSibling;
        run.appendChild(next);
        next = after;
      }
      node.parentNode.insertBefore(run, node.nextSibling);
      run.addEventListener("click", () => run.classList.toggle("open"));
    }
  }

  window.addEventListener("DOMContentLoaded", foldRuns);
  window.addEventListener("DOMContentLoaded", layout);
  window.addEventListener("load", layout);   // again once fonts and figures have their final size
  window.addEventListener("resize", layout);
})();
