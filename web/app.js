// elm web GUI: chat with the models of `elm serve` through its OpenAI-compatible API.
// Conversations and settings live in localStorage; nothing is loaded from outside this server.
'use strict';

const $ = (sel) => document.querySelector(sel);
const STORE_CONVERSATIONS = 'elm.conversations';
const STORE_SETTINGS = 'elm.settings';
const DEFAULT_SETTINGS = { model: '', system: '', temperature: 0.8, top_p: 0.95, max_tokens: 512, seed: '' };

const state = {
  conversations: load(STORE_CONVERSATIONS, []),  // [{id, title, created, messages: [{role, content, meta}]}]
  current: null,      // id of the open conversation
  settings: { ...DEFAULT_SETTINGS, ...load(STORE_SETTINGS, {}) },
  models: [],         // from /api/models
  generating: null,   // {controller, message} while a reply streams
};

function load(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v ?? fallback;
  } catch {
    return fallback;
  }
}
function save() {
  localStorage.setItem(STORE_CONVERSATIONS, JSON.stringify(state.conversations));
  localStorage.setItem(STORE_SETTINGS, JSON.stringify(state.settings));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

let toastTimer = 0;
function toast(message, kind = 'error') {
  const t = $('#toast');
  t.textContent = message;
  t.className = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 5000);
}

// ---- server and models ----

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data?.error?.message || `HTTP ${res.status}`);
  return data;
}

async function refreshModels() {
  try {
    const data = await api('/api/models');
    state.models = data.models;
    if (!state.models.some((m) => m.id === state.settings.model)) state.settings.model = data.default || '';
    setServerStatus(true);
  } catch (e) {
    setServerStatus(false);
  }
  renderModels();
}

function setServerStatus(ok) {
  $('#server-status').className = 'status-dot ' + (ok ? 'ok' : 'down');
  $('#server-text').textContent = ok ? 'server running' : 'server unreachable';
}

function currentModel() {
  return state.models.find((m) => m.id === state.settings.model);
}

function renderModels() {
  const select = $('#model-select');
  select.replaceChildren();
  if (state.models.length === 0) select.append(el('option', '', 'no models found'));
  for (const m of state.models) {
    const o = el('option', '', m.id + (m.state === 'loaded' ? '' : `  (${m.state})`));
    o.value = m.id;
    select.append(o);
  }
  select.value = state.settings.model;
  const m = currentModel();
  const dot = $('#model-state');
  dot.className = 'status-dot ' + (m ? m.state : '');
  dot.title = m ? (m.error || m.state) : '';
  const action = $('#model-action');
  action.hidden = !m;
  action.disabled = !m || m.state === 'loading';
  action.textContent = m && m.state === 'loaded' ? 'Unload' : 'Load';
  $('#empty-model').textContent = m
    ? `${m.id} · ${m.state === 'loaded' ? `${m.context_length} tokens of context` : 'loads on the first message'}`
    : 'No model: put .elm, .gguf files or Hugging Face folders in the models directory.';
}

async function toggleModel() {
  const m = currentModel();
  if (!m) return;
  const loading = m.state !== 'loaded';
  m.state = loading ? 'loading' : 'unloaded';
  renderModels();
  try {
    await api(loading ? '/api/models/load' : '/api/models/unload', { model: m.id });
  } catch (e) {
    toast(e.message);
  }
  await refreshModels();
}

// ---- conversations ----

function conversation() {
  return state.conversations.find((c) => c.id === state.current);
}

function newConversation() {
  const c = { id: Date.now().toString(36) + Math.random().toString(36).slice(2, 6), title: 'New chat', created: Date.now(), messages: [] };
  state.conversations.unshift(c);
  state.current = c.id;
  return c;
}

function dayGroup(ts) {
  const days = Math.floor((Date.now() - ts) / 86400000);
  return days < 1 ? 'Today' : days < 2 ? 'Yesterday' : days < 7 ? 'This week' : 'Older';
}

function renderConversations() {
  const nav = $('#conversations');
  nav.replaceChildren();
  let group = '';
  for (const c of state.conversations) {
    if (c.messages.length === 0 && c.id !== state.current) continue;
    const g = dayGroup(c.created);
    if (g !== group) nav.append(el('div', 'conv-group', (group = g)));
    const item = el('div', 'conv' + (c.id === state.current ? ' active' : ''));
    item.append(el('span', 'title', c.title));
    const del = el('button', 'delete');
    del.type = 'button';
    del.title = 'Delete';
    del.innerHTML = '<svg viewBox="0 0 24 24"><path d="M5 7h14M10 11v6M14 11v6M6 7l1 12h10l1-12M9 7V4h6v3"/></svg>';
    del.onclick = (ev) => {
      ev.stopPropagation();
      deleteConversation(c.id);
    };
    item.append(del);
    item.onclick = () => openConversation(c.id);
    nav.append(item);
  }
}

function deleteConversation(id) {
  if (state.generating && state.current === id) stopGenerating();
  state.conversations = state.conversations.filter((c) => c.id !== id);
  if (state.current === id) state.current = null;
  save();
  render();
}

function openConversation(id) {
  if (state.generating) stopGenerating();
  state.current = id;
  render();
}

// ---- messages ----

function metaLine(meta) {
  const line = el('div', 'meta');
  if (!meta) return line;
  if (meta.tokens_per_s) line.append(el('span', 'speed', `${meta.tokens_per_s.toFixed(1)} tok/s`));
  if (meta.ttft_ms !== undefined) line.append(el('span', 'ttft', `TTFT ${Math.round(meta.ttft_ms)} ms`));
  if (meta.completion_tokens !== undefined) line.append(el('span', 'tokens', `${meta.completion_tokens} tokens`));
  if (meta.draft_n) line.append(el('span', 'drafts', `${meta.draft_n_accepted}/${meta.draft_n} drafts accepted`));
  if (meta.model) line.append(el('span', 'model', meta.model));
  if (meta.stopped) line.append(el('span', 'stopped', 'stopped'));
  else if (meta.finish_reason === 'length') line.append(el('span', 'stopped', 'length limit'));
  return line;
}

function messageNode(m) {
  const node = el('div', `msg ${m.role}`);
  const body = el('div', 'body');
  const content = el('div', 'content' + (m.error ? ' error' : ''), m.error || m.content);
  body.append(content);
  if (m.role === 'assistant') {
    const avatar = el('div', 'avatar');
    avatar.innerHTML = '<img src="/favicon.svg" alt="">';
    node.append(avatar);
    body.append(metaLine(m.meta));
  }
  node.append(body);
  return node;
}

function renderMessages() {
  const c = conversation();
  const list = $('#messages');
  list.replaceChildren();
  const messages = c ? c.messages : [];
  $('#empty').hidden = messages.length > 0;
  for (const m of messages) list.append(messageNode(m));
  scrollToEnd();
}

function scrollToEnd() {
  const chat = $('#chat');
  chat.scrollTop = chat.scrollHeight;
}

function render() {
  renderConversations();
  renderMessages();
  renderModels();
}

// ---- generation ----

function requestBody(c) {
  const s = state.settings;
  const messages = [];
  if (s.system.trim()) messages.push({ role: 'system', content: s.system });
  for (const m of c.messages) if (!m.error && (m.role === 'user' || m.content)) messages.push({ role: m.role, content: m.content });
  const body = {
    model: s.model || undefined, messages, stream: true, stream_options: { include_usage: true },
    temperature: Number(s.temperature), top_p: Number(s.top_p), max_tokens: Number(s.max_tokens) || undefined,
  };
  if (s.seed !== '' && s.seed !== null && !Number.isNaN(Number(s.seed))) body.seed = Number(s.seed);
  return body;
}

// Reads a server-sent event stream, calling onEvent with each parsed `data:` payload.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let at;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

async function send(text) {
  text = text.trim();
  if (!text || state.generating) return;
  const c = conversation() || newConversation();
  if (c.messages.length === 0) c.title = text.length > 48 ? text.slice(0, 47) + '…' : text;
  c.messages.push({ role: 'user', content: text });
  const reply = { role: 'assistant', content: '', meta: { model: state.settings.model } };
  c.messages.push(reply);
  save();
  renderConversations();
  renderMessages();

  const node = $('#messages').lastElementChild;
  const content = node.querySelector('.content');
  const meta = node.querySelector('.meta');
  node.classList.add('streaming');
  const controller = new AbortController();
  state.generating = { controller, reply };
  $('#composer').classList.add('generating');
  const live = $('#live-speed');
  const started = performance.now();
  let firstAt = 0, pieces = 0;

  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(requestBody({ messages: c.messages.slice(0, -1) })), signal: controller.signal,
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error(err?.error?.message || `HTTP ${res.status}`);
    }
    refreshModels();  // the model may have just been loaded for this request
    await readEvents(res, (ev) => {
      if (ev.error) throw new Error(ev.error.message);
      if (ev.usage) reply.meta.completion_tokens = ev.usage.completion_tokens;
      const choice = ev.choices && ev.choices[0];
      if (!choice) return;
      const piece = choice.delta && choice.delta.content;
      if (piece) {
        if (!firstAt) firstAt = performance.now();
        pieces++;
        reply.content += piece;
        content.textContent = reply.content;
        const secs = (performance.now() - firstAt) / 1000;
        if (secs > 0.2) {
          live.hidden = false;
          live.textContent = `${(pieces / secs).toFixed(1)} tok/s`;
        }
        scrollToEnd();
      }
      if (choice.finish_reason) reply.meta.finish_reason = choice.finish_reason;
      if (ev.timings) {
        reply.meta.tokens_per_s = ev.timings.tokens_per_s;
        reply.meta.ttft_ms = ev.timings.ttft_ms;
        reply.meta.completion_tokens = ev.timings.completion_tokens;
        reply.meta.draft_n = ev.timings.draft_n;  // speculative decoding (elm serve --draft / --lookup)
        reply.meta.draft_n_accepted = ev.timings.draft_n_accepted;
      }
    });
  } catch (e) {
    if (e.name === 'AbortError') {
      reply.meta.stopped = true;
      if (firstAt) {
        reply.meta.ttft_ms = firstAt - started;
        const secs = (performance.now() - firstAt) / 1000;
        if (secs > 0) reply.meta.tokens_per_s = pieces / secs;
      }
    } else {
      reply.error = e.message;
      content.textContent = e.message;
      content.classList.add('error');
      toast(e.message);
    }
  } finally {
    node.classList.remove('streaming');
    meta.replaceWith(metaLine(reply.meta));
    state.generating = null;
    $('#composer').classList.remove('generating');
    live.hidden = true;
    save();
  }
}

function stopGenerating() {
  if (state.generating) state.generating.controller.abort();
}

// ---- settings ----

function bindSettings() {
  const s = state.settings;
  const fields = [
    ['#system-prompt', 'system'], ['#temperature', 'temperature'], ['#top-p', 'top_p'],
    ['#max-tokens', 'max_tokens'], ['#seed', 'seed'],
  ];
  const show = () => {
    for (const [sel, key] of fields) $(sel).value = s[key];
    $('#temperature-value').textContent = Number(s.temperature).toFixed(2);
    $('#top-p-value').textContent = Number(s.top_p).toFixed(2);
  };
  for (const [sel, key] of fields) {
    $(sel).addEventListener('input', (e) => {
      s[key] = e.target.value;
      show();
      save();
    });
  }
  $('#reset-settings').onclick = () => {
    Object.assign(s, { ...DEFAULT_SETTINGS, model: s.model });
    show();
    save();
  };
  show();
}

// ---- wiring ----

function autosize() {
  const t = $('#prompt');
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, window.innerHeight * 0.4) + 'px';
}

function init() {
  bindSettings();
  $('#composer').addEventListener('submit', (e) => {
    e.preventDefault();
    if (state.generating) return stopGenerating();
    const t = $('#prompt');
    const text = t.value;
    t.value = '';
    autosize();
    send(text);
  });
  $('#prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('#composer').requestSubmit();
    }
  });
  $('#prompt').addEventListener('input', autosize);
  for (const b of document.querySelectorAll('.suggestion')) {
    b.onclick = () => {
      $('#prompt').value = b.textContent;
      $('#composer').requestSubmit();
    };
  }
  $('#new-chat').onclick = () => {
    if (state.generating) stopGenerating();
    newConversation();
    render();
    $('#prompt').focus();
  };
  $('#model-select').addEventListener('change', (e) => {
    state.settings.model = e.target.value;
    save();
    renderModels();
  });
  $('#model-action').onclick = toggleModel;
  const app = $('#app');
  $('#toggle-settings').onclick = () => app.classList.toggle('settings-open');
  $('#close-settings').onclick = () => app.classList.remove('settings-open');
  $('#toggle-sidebar').onclick = () => {
    app.classList.toggle(window.innerWidth > 760 ? 'sidebar-hidden' : 'sidebar-shown');
  };
  $('#clear-all').onclick = () => {
    if (!confirm('Delete every conversation kept in this browser?')) return;
    stopGenerating();
    state.conversations = [];
    state.current = null;
    save();
    render();
  };
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.generating) stopGenerating();
  });

  const first = state.conversations.find((c) => c.messages.length > 0);
  state.current = first ? first.id : null;
  render();
  refreshModels();
  setInterval(refreshModels, 5000);
  $('#prompt').focus();
}

init();
