import { gql, subscribe, onToken, baseStyle, escape } from './thrive-client.js';

// <thrive-my-celebrations></thrive-my-celebrations>: my counts, milestones and live celebrations.
class ThriveMyCelebrations extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${baseStyle}</style><div class="card"><h3>My celebrations</h3>
      <p class="summary muted"></p><ul class="items" aria-live="polite"></ul></div>`;
    this.summary = root.querySelector('.summary');
    this.list = root.querySelector('.items');
    this.offToken = onToken(() => this.load());
  }

  disconnectedCallback() {
    if (this.offToken) this.offToken();
    if (this.unsubscribe) this.unsubscribe();
  }

  item(title, when) {
    return `<li><span class="tag">celebration</span> ${escape(title)} <span class="muted">${when ? new Date(when).toLocaleString() : ''}</span></li>`;
  }

  async load() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = await subscribe('CelebrationsLive', {}, (data) => {
      if (data && data.celebrations) this.list.insertAdjacentHTML('afterbegin', this.item(data.celebrations.title, data.celebrations.deliveredAt));
    });
    try {
      const data = await gql('MyCelebrations', { first: 10 });
      const c = data.me?.counts;
      this.summary.textContent = c ? `${c.thanksReceived} thanks received · ${c.peopleHelped} people helped · ${c.streakWeeks}-week streak` : '';
      this.list.innerHTML = data.inbox.edges.map((e) => this.item(e.node.title, e.node.createdAt)).join('')
        + (data.me?.milestones || []).map((m) => this.item(m.title, m.reachedAt)).join('');
    } catch (err) {
      this.summary.textContent = err.message;
    }
  }
}
customElements.define('thrive-my-celebrations', ThriveMyCelebrations);
