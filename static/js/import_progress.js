// The contact import page: polls the import's JSON progress, moves the bar and the counters,
// and reloads once the import is over so that the page lists the rejected rows.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || box.dataset.finished === "true") {
    return;
  }
  var bar = document.getElementById("import-progress-bar");

  function show(data) {
    Object.keys(data).forEach(function (name) {
      var field = box.querySelector('[data-field="' + name + '"]');
      if (field && name !== "status") {
        field.textContent = data[name] === null ? "" : String(data[name]);
      }
    });
    if (data.rows !== null) {
      bar.max = data.rows || 1;
    }
    bar.value = data.processed;
    bar.textContent = data.processed + " / " + (data.rows === null ? "?" : data.rows);
  }

  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        show(data);
        if (data.status === "done" || data.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 5000);
      });
  }

  window.setTimeout(poll, 500);
})();
