// Thrive widgets: a tiny GraphQL client (HTTP + graphql-transport-ws). No build step.
const state = { token: null, endpoint: null, listeners: new Set(), ops: null };

function endpoint() {
  if (state.endpoint) return state.endpoint;
  const script = document.querySelector('script[src*="/widgets/thrive-client.js"]');
  const base = script ? new URL(script.src).origin : window.location.origin;
  return (state.endpoint = `${base}/graphql`);
}

export function setToken(token) {
  state.token = token;
  for (const fn of state.listeners) fn(token);
}

export function onToken(fn) {
  state.listeners.add(fn);
  if (state.token) fn(state.token);
  return () => state.listeners.delete(fn);
}

export async function operation(name) {
  if (!state.ops) {
    const base = endpoint().replace(/\/graphql$/, '');
    state.ops = fetch(`${base}/widgets/operations.json`).then((r) => r.json());
  }
  const ops = await state.ops;
  if (!ops[name]) throw new Error(`unknown operation ${name}`);
  return ops[name];
}

// SHA-256 of each document, for persisted queries (Apollo's APQ request shape). WebCrypto
// exists only in secure contexts (https, localhost); elsewhere the document itself is sent.
const hashes = new Map();
async function documentHash(query) {
  if (!globalThis.crypto || !crypto.subtle) return null;
  if (!hashes.has(query)) {
    hashes.set(query, crypto.subtle.digest('SHA-256', new TextEncoder().encode(query)).then((buf) =>
      Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('')));
  }
  return hashes.get(query);
}

async function post(payload) {
  const res = await fetch(endpoint(), {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...(state.token ? { Authorization: `Bearer ${state.token}` } : {}),
    },
    body: JSON.stringify(payload),
  });
  return res.json().catch(() => ({ errors: [{ message: res.statusText }] }));
}

export async function gql(name, variables = {}) {
  const query = await operation(name);
  const digest = await documentHash(query);
  let body;
  if (digest) {
    // The hash alone: a smaller request, and the only form a persisted-queries-only gateway
    // accepts. A gateway that does not know the hash says so, and the document follows.
    const persistedQuery = { version: 1, sha256Hash: digest };
    body = await post({ variables, operationName: name, extensions: { persistedQuery } });
    const missing = (body.errors || []).some((e) => e.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND');
    if (missing) body = await post({ query, variables, operationName: name });
  } else {
    body = await post({ query, variables, operationName: name });
  }
  if (body.errors && body.errors.length) {
    const err = new Error(body.errors.map((e) => e.message).join('; '));
    err.graphqlErrors = body.errors;
    err.data = body.data;
    throw err;
  }
  return body.data;
}

// One shared WebSocket per page; each subscription is an id on it. Reconnects with backoff.
let socket = null;
let nextId = 1;
const subs = new Map();

function wsUrl() {
  return endpoint().replace(/^http/, 'ws');
}

function openSocket() {
  if (socket || !state.token) return;
  const ws = new WebSocket(wsUrl(), 'graphql-transport-ws');
  socket = ws;
  let acked = false;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${state.token}` } }));
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'connection_ack') {
      acked = true;
      for (const [id, sub] of subs) send(id, sub);
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong' }));
    } else if (msg.type === 'next' && subs.has(msg.id)) {
      subs.get(msg.id).onData(msg.payload.data, msg.payload.errors);
    } else if (msg.type === 'error' && subs.has(msg.id)) {
      subs.get(msg.id).onData(null, msg.payload);
    }
  };
  ws.onclose = () => {
    socket = null;
    if (subs.size) setTimeout(openSocket, acked ? 500 : 3000);
  };
  function send(id, sub) {
    ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query: sub.query, variables: sub.variables, operationName: sub.name } }));
  }
  ws.sendSub = (id, sub) => { if (acked) send(id, sub); };
}

export async function subscribe(name, variables, onData) {
  const query = await operation(name);
  const id = String(nextId++);
  const sub = { name, query, variables, onData };
  subs.set(id, sub);
  openSocket();
  if (socket && socket.sendSub) socket.sendSub(id, sub);
  return () => {
    subs.delete(id);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ id, type: 'complete' }));
  };
}

onToken(() => {
  // A new user: reconnect so the socket authenticates as them.
  if (socket) socket.close();
  socket = null;
  if (subs.size) openSocket();
});

export function escape(text) {
  const div = document.createElement('div');
  div.textContent = text == null ? '' : String(text);
  return div.innerHTML;
}

export const baseStyle = `
  :host { display: block; font: 14px/1.4 system-ui, sans-serif; color: #1d2330; }
  .card { border: 1px solid #dde3ec; border-radius: 10px; padding: 12px 14px; background: #fff; }
  h3 { margin: 0 0 8px; font-size: 15px; }
  .muted { color: #6b7688; font-size: 12px; }
  .error { color: #a12c2c; }
  .ok { color: #1f7a45; }
  button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid #3b5bdb; background: #3b5bdb; color: #fff; cursor: pointer; }
  input, textarea, select { font: inherit; width: 100%; box-sizing: border-box; margin: 2px 0 8px; padding: 6px; border: 1px solid #c9d1dd; border-radius: 6px; }
  ul { list-style: none; margin: 0; padding: 0; }
  li { padding: 6px 0; border-top: 1px solid #eef1f5; }
  li:first-child { border-top: 0; }
  .tag { display: inline-block; background: #eef2ff; color: #3b5bdb; border-radius: 10px; padding: 0 7px; margin-right: 3px; font-size: 12px; }
`;
