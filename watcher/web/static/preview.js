// Preview in place: the Preview button posts the form as usual without JavaScript; with it, the
// same request asks only for the preview box and swaps it in, keeping what was typed.
(function () {
  "use strict";
  var form = document.getElementById("watch-form");
  var button = document.getElementById("preview-button");
  if (!form || !button || !window.fetch || !window.FormData) { return; }
  button.addEventListener("click", function (event) {
    event.preventDefault();
    var data = new FormData(form);
    data.set("action", "preview");
    var box = document.getElementById("preview");
    button.disabled = true;
    button.textContent = "Asking the registry…";
    // not form.action: the buttons named "action" shadow it
    var target = (button.getAttribute("formaction") || form.getAttribute("action")).split("#")[0];
    fetch(target, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-Requested-With": "preview" }
    }).then(function (response) {
      return response.text();
    }).then(function (html) {
      var holder = document.createElement("div");
      holder.innerHTML = html;  // our own server-rendered, escaped fragment
      var fresh = holder.querySelector("#preview");
      if (!fresh || !box) { throw new Error("no preview in the answer"); }
      {
        box.replaceWith(fresh);
        var top = fresh.getBoundingClientRect().top;
        if (top < 0 || top > window.innerHeight - 80) { fresh.scrollIntoView({ block: "start" }); }
      }
    }).catch(function () {  // no answer: post the form the plain way, as a preview
      var action = document.createElement("input");
      action.type = "hidden";
      action.name = "action";
      action.value = "preview";
      form.appendChild(action);
      form.submit();
    }).finally(function () {
      button.disabled = false;
      button.textContent = "Preview";
    });
  });
})();
