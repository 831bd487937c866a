// The console's only script: forms marked data-target swap the server's HTML answer into that
// element; elements marked data-poll refresh themselves from their URL every data-every ms (the
// server stops a poll by answering without data-poll); data-load fills an element once.
"use strict";

async function fetchHtml(url, init) {
  try {
    const response = await fetch(url, init);
    return await response.text();
  } catch (error) {
    return `<p class="problem" role="alert">The console did not answer (${error.message}).</p>`;
  }
}

function activate(root) {
  root.querySelectorAll("[data-poll]").forEach(schedule);
  root.querySelectorAll("[data-load]").forEach(async (element) => {
    element.outerHTML = await fetchHtml(element.dataset.load);
    activate(document.body);
  });
}

function schedule(element) {
  if (element.dataset.scheduled) return;
  element.dataset.scheduled = "yes";
  setTimeout(async () => {
    if (!document.body.contains(element)) return;
    const holder = document.createElement("div");
    holder.innerHTML = await fetchHtml(element.dataset.poll);
    const fresh = holder.firstElementChild;
    if (!fresh || !document.body.contains(element)) return;
    element.replaceWith(fresh);
    activate(fresh.parentElement);
  }, Number(element.dataset.every || 3000));
}

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-target]");
  if (!form) return;
  event.preventDefault();
  const target = document.querySelector(form.dataset.target);
  const data = new URLSearchParams(new FormData(form));
  const method = (form.getAttribute("method") || "get").toUpperCase();
  const url = method === "GET" ? `${form.getAttribute("action")}?${data}` : form.getAttribute("action");
  target.setAttribute("aria-busy", "true");
  form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  target.innerHTML = await fetchHtml(url, method === "GET" ? {} : { method, body: data });
  form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  target.removeAttribute("aria-busy");
  activate(target);
});

document.addEventListener("DOMContentLoaded", () => activate(document.body));
