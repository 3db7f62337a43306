// kaas GUI: the only script. Refreshes parts of a page marked data-refresh (by fetching the same
// page and swapping the element with the same id), and asks before destructive forms.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-refresh]")) {
    const every = parseInt(el.dataset.refresh, 10) || 5000;
    const tick = async () => {
      try {
        const res = await fetch(window.location.pathname, { credentials: "same-origin" });
        if (res.ok) {
          const doc = new DOMParser().parseFromString(await res.text(), "text/html");
          const fresh = doc.getElementById(el.id);
          if (fresh) el.innerHTML = fresh.innerHTML;
        }
      } catch (_) { /* next tick */ }
      setTimeout(tick, every);
    };
    setTimeout(tick, every);
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
});
