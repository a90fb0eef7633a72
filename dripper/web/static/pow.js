// dripper's signup proof of work (ALTCHA v1): before a form marked data-dripper-pow posts,
// fetch a challenge from that URL, find n with SHA-256(salt + n) = challenge, and send the
// solution as the hidden field "altcha". No cookie, nothing from anywhere but dripper serve.
(function () {
  "use strict";
  function hex(buffer) {
    return Array.from(new Uint8Array(buffer), function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }
  async function solve(c) {
    var encoder = new TextEncoder();
    for (var n = 0; n <= (c.maxNumber || c.maxnumber); n++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(c.salt + n));
      if (hex(digest) === c.challenge) return n;
    }
    return null;
  }
  function arm(form) {
    form.addEventListener("submit", async function (event) {
      if (form.dataset.solved === "1") return;
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        var answer = await fetch(form.dataset.dripperPow, { cache: "no-store", credentials: "omit" });
        var c = await answer.json();
        var n = await solve(c);
        var input = form.querySelector("input[name=altcha]");
        if (!input) {
          input = document.createElement("input");
          input.type = "hidden";
          input.name = "altcha";
          form.appendChild(input);
        }
        input.value = btoa(JSON.stringify({
          algorithm: c.algorithm, challenge: c.challenge, number: n, salt: c.salt,
          signature: c.signature
        }));
        form.dataset.solved = "1";
        form.submit();
      } finally {
        if (button) button.disabled = false;
      }
    });
  }
  document.querySelectorAll("form[data-dripper-pow]").forEach(arm);
})();
