// Small DOM and number-formatting helpers. Every string from the API goes into the page as text
// (textContent), never as HTML: meeting ids, titles and names are untrusted.

export const fmt = new Intl.NumberFormat();
export const pct = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

export const $ = (id) => document.getElementById(id);

export function text(node, value) {
  node.textContent = value == null ? "–" : String(value);
}

export function num(value) {
  return typeof value === "number" && isFinite(value) ? fmt.format(value) : "–";
}

export function compact(value) {
  return compactFmt.format(value);
}

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child); // strings become text nodes
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function label(key) {
  const names = { for: "For", against: "Against", abstain: "Abstain", broker_non_votes: "Broker non-votes" };
  return names[key] || key;
}

export function showMessage(id, message) {
  text($(id), message || "");
}

export function setConnection(kind, message) {
  const node = $("connection");
  node.dataset.state = kind;
  const icons = { live: "● ", connecting: "◌ ", down: "✕ ", idle: "" };
  text(node, (icons[kind] || "") + message);
}
