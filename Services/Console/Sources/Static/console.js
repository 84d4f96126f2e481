// The console's little script: tooltips for chart marks (mouse and keyboard) and the live tail.
// Plain JavaScript, no build step, nothing fetched from elsewhere; the pages work without it.
(function () {
  "use strict";
  try {
    var tip = document.getElementById("tip");
    function show(mark, x, y) {
      var title = mark.querySelector("title");
      if (!tip || !title) return;
      tip.textContent = title.textContent;
      tip.hidden = false;
      tip.style.left = (x + 12) + "px";
      tip.style.top = (y + 12) + "px";
    }
    function hide() { if (tip) tip.hidden = true; }
    document.querySelectorAll(".mark").forEach(function (mark) {
      mark.addEventListener("mousemove", function (event) { show(mark, event.clientX, event.clientY); });
      mark.addEventListener("mouseleave", hide);
      mark.addEventListener("focus", function () {
        var box = mark.getBoundingClientRect();
        show(mark, box.left + box.width / 2, box.top);
      });
      mark.addEventListener("blur", hide);
    });

    var live = document.querySelector(".live");
    if (live && window.EventSource) {
      var state = live.querySelector(".live-state");
      var body = document.getElementById("tail");
      var source = new EventSource(live.getAttribute("data-stream"));
      source.addEventListener("open", function () { state.textContent = "Live: new events appear at the top as they are stored."; });
      source.addEventListener("error", function () { state.textContent = "Disconnected; reconnecting…"; });
      source.addEventListener("event", function (message) {
        var event = JSON.parse(message.data);
        var row = document.createElement("tr");
        row.className = "tail-row";
        ["stored_at", "time", "type", "name", "person", "source"].forEach(function (key) {
          var cell = document.createElement("td");
          cell.textContent = event[key] == null ? "" : String(event[key]);
          row.appendChild(cell);
        });
        body.insertBefore(row, body.firstChild);
        while (body.children.length > 200) body.removeChild(body.lastChild);
      });
    }
  } catch (error) {
    // Never break the page: the charts and tables work without this script.
  }
})();
