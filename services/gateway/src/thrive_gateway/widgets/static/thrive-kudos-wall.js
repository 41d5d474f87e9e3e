import { gql, subscribe, onToken, baseStyle, escape } from './thrive-client.js';

function render(node) {
  if (node.__typename === 'Thanks') {
    const tags = (node.themes || []).map((t) => `<span class="tag">#${escape(t)}</span>`).join('');
    return `<li data-id="${escape(node.id)}"><strong>${escape(node.giver?.name || 'Someone')}</strong> thanked
      <strong>${escape(node.helper?.name || 'someone')}</strong>: ${escape(node.message)} ${tags}</li>`;
  }
  return `<li data-id="${escape(node.id)}" class="milestone"><span class="tag">milestone</span> <strong>${escape(node.person?.name || 'Someone')}</strong>: ${escape(node.title)}</li>`;
}

// <thrive-kudos-wall first="20" team="" theme=""></thrive-kudos-wall>: live public thanks and milestones.
class ThriveKudosWall extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${baseStyle}</style><div class="card"><h3>Kudos wall</h3>
      <ul class="items" aria-live="polite"></ul><p class="muted status">Sign in to see the wall.</p></div>`;
    this.list = root.querySelector('.items');
    this.status = root.querySelector('.status');
    this.offToken = onToken(() => this.load());
  }

  disconnectedCallback() {
    if (this.offToken) this.offToken();
    if (this.unsubscribe) this.unsubscribe();
  }

  vars() {
    return { team: this.getAttribute('team') || null, theme: this.getAttribute('theme') || null };
  }

  async load() {
    if (this.unsubscribe) this.unsubscribe();
    this.list.innerHTML = '';
    this.status.textContent = 'Loading…';
    // Subscribe first so nothing published while the page loads is missed.
    this.unsubscribe = await subscribe('FeedLive', this.vars(), (data) => {
      if (data && data.feed) this.add(data.feed, true);
    });
    try {
      const first = Number(this.getAttribute('first') || 20);
      const data = await gql('Feed', { first, ...this.vars() });
      for (const edge of data.feed.edges) this.add(edge.node, false);
      this.status.textContent = data.feed.edges.length ? '' : 'No thanks yet: be the first!';
    } catch (err) {
      this.status.textContent = err.message;
    }
  }

  add(node, live) {
    if (this.list.querySelector(`[data-id="${CSS.escape(node.id)}"]`)) return;
    this.list.insertAdjacentHTML(live ? 'afterbegin' : 'beforeend', render(node));
    this.status.textContent = '';
  }
}
customElements.define('thrive-kudos-wall', ThriveKudosWall);
