import { gql, baseStyle, escape } from './thrive-client.js';

// <thrive-give-thanks helper="grace"></thrive-give-thanks>
class ThriveGiveThanks extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${baseStyle}</style>
      <form class="card" part="form">
        <h3>Say thanks</h3>
        <label>Who helped you? <input name="helper" required placeholder="person id, e.g. grace" value="${escape(this.getAttribute('helper') || '')}"></label>
        <label>What did they do? <textarea name="message" rows="3" required maxlength="2000"></textarea></label>
        <label>Themes <input name="themes" placeholder="#python #customer-first"></label>
        <label><input type="checkbox" name="private" style="width:auto"> Only between us</label>
        <button type="submit">Send thanks</button>
        <p class="status" role="status" aria-live="polite"></p>
      </form>`;
    const form = root.querySelector('form');
    const status = root.querySelector('.status');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const themes = String(data.get('themes') || '').split(/[\s,]+/).filter(Boolean);
      status.className = 'status muted';
      status.textContent = 'Sending…';
      try {
        const res = await gql('GiveThanks', {
          input: {
            helper: String(data.get('helper')).trim(),
            message: String(data.get('message')),
            themes,
            visibility: data.get('private') ? 'PRIVATE' : 'PUBLIC',
          },
        });
        const r = res.giveThanks;
        if (r.__typename === 'ThanksGiven') {
          status.className = 'status ok';
          status.textContent = `Thanks sent to ${r.thanks.helper ? r.thanks.helper.name : 'them'}.`;
          form.querySelector('textarea').value = '';
          this.dispatchEvent(new CustomEvent('thanks-given', { detail: r.thanks, bubbles: true }));
        } else if (r.__typename === 'AllowanceExceeded') {
          status.className = 'status error';
          const when = r.resetsAt ? new Date(r.resetsAt).toLocaleDateString() : 'soon';
          status.textContent = `${r.message} (${r.limit} per ${r.period}; more on ${when}).`;
        } else if (r.__typename === 'RateLimited') {
          status.className = 'status error';
          status.textContent = `${r.message} Try again in ${Math.ceil(r.retryAfterSeconds)} s.`;
        } else {
          status.className = 'status error';
          status.textContent = r.message;
        }
      } catch (err) {
        status.className = 'status error';
        status.textContent = err.message;
      }
    });
  }
}
customElements.define('thrive-give-thanks', ThriveGiveThanks);
