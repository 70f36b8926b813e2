// Live updates: the status bar from /api/status, and each [data-live] block from its page's
// ?partial=1 answer, rendered (and escaped) by the server like the page itself.
"use strict";

const REFRESH_MS = 2000;

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
}

async function refreshStatus() {
  try {
    const reply = await fetch("/api/status", {cache: "no-store"});
    const head = await reply.json();
    setText("head-chain", head.chain_id || "–");
    setText("head-height", head.height);
    setText("head-time", head.block_time_ns ?
      new Date(head.block_time_ns / 1e6).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");
    setText("head-epoch", head.epoch === null ? "–" : head.epoch);
    setText("head-stage", head.stage || "–");
    setText("head-state", head.up ? "chain node up" : "chain node unreachable: " + head.error);
    document.body.classList.toggle("chain-down", !head.up);
  } catch (error) {
    setText("head-state", "explorer unreachable");
    document.body.classList.add("chain-down");
  }
}

async function refreshLive(block) {
  const url = new URL(window.location.href);
  url.searchParams.set("partial", "1");
  try {
    const reply = await fetch(url, {cache: "no-store"});
    if (reply.ok) block.innerHTML = await reply.text();
  } catch (error) {
    // the status bar says the explorer is unreachable; keep what is shown
  }
}

function refresh() {
  refreshStatus();
  document.querySelectorAll("[data-live]").forEach(refreshLive);
}

setInterval(refresh, REFRESH_MS);
refreshStatus();
