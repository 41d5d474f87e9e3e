import { gql, onToken, baseStyle, escape } from './thrive-client.js';

// <thrive-asks first="20"></thrive-asks>: open asks on themes I follow (or all), with "I can help".
class ThriveAsks extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${baseStyle} li button { float: right; padding: 2px 8px; }</style>
      <div class="card"><h3>Asks I can help with</h3><ul class="items"></ul><p class="muted status"></p></div>`;
    this.list = root.querySelector('.items');
    this.status = root.querySelector('.status');
    this.list.addEventListener('click', (ev) => this.offer(ev));
    this.offToken = onToken(() => this.load());
  }

  disconnectedCallback() {
    if (this.offToken) this.offToken();
  }

  async load() {
    try {
      const data = await gql('AsksForMe', { first: Number(this.getAttribute('first') || 20) });
      const me = data.me;
      const themes = new Set((me?.follows || []).filter((f) => f.kind === 'theme').map((f) => f.target.replace(/^#/, '')));
      const asks = data.asks.edges.map((e) => e.node).filter((a) => a.asker?.id !== me?.id);
      const mine = themes.size ? asks.filter((a) => a.themes.some((t) => themes.has(t))) : asks;
      this.list.innerHTML = mine.map((a) => `<li><button data-ask="${escape(a.id)}">I can help</button>
        <strong>${escape(a.title)}</strong> <span class="muted">${escape(a.size.toLowerCase())} · ${escape(a.asker?.name || '')}</span><br>
        ${a.themes.map((t) => `<span class="tag">#${escape(t)}</span>`).join('')}</li>`).join('');
      this.status.textContent = mine.length ? '' : 'No open asks on your themes right now.';
    } catch (err) {
      this.status.textContent = err.message;
    }
  }

  async offer(ev) {
    const button = ev.target.closest('button[data-ask]');
    if (!button) return;
    button.disabled = true;
    try {
      const res = await gql('OfferHelp', { input: { askId: button.dataset.ask, message: 'Happy to help!' } });
      button.textContent = res.offerHelp.__typename === 'OfferMade' ? 'Offered ✓' : res.offerHelp.message;
    } catch (err) {
      button.textContent = 'Try again';
      button.disabled = false;
    }
  }
}
customElements.define('thrive-asks', ThriveAsks);
