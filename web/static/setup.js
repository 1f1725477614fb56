// "Test connection": send the form to /setup/test/<remote> and show the answer.
"use strict";

document.querySelectorAll("button.probe").forEach(function (button) {
  button.addEventListener("click", function () {
    var remote = button.dataset.remote;
    var output = document.getElementById("result-" + remote);
    var form = document.getElementById("setup");
    output.className = "";
    output.textContent = "Testing…";
    button.disabled = true;
    fetch("/setup/test/" + remote, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin"
    })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        var result = answer.error ? { ok: false, message: answer.error.message } : answer;
        output.className = result.ok ? "ok" : "error";
        output.textContent = result.message;
      })
      .catch(function () {
        output.className = "error";
        output.textContent = "The service did not answer; is it still running?";
      })
      .finally(function () { button.disabled = false; });
  });
});
