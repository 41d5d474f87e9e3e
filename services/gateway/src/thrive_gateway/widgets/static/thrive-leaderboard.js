import { gql, subscribe, onToken, baseStyle, escape } from './thrive-client.js';

// <thrive-leaderboard board="SERVICE" window="MONTH" first="10"></thrive-leaderboard>
class ThriveLeaderboard extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${baseStyle} ol { margin: 0; padding-left: 22px; }</style>
      <div class="card"><h3>Who helped most this <span class="window"></span></h3>
      <ol class="rows"></ol><p class="muted me"></p></div>`;
    this.rows = root.querySelector('.rows');
    this.me = root.querySelector('.me');
    root.querySelector('.window').textContent = (this.getAttribute('window') || 'MONTH').toLowerCase().replace('_', ' ');
    this.offToken = onToken(() => this.load());
  }

  disconnectedCallback() {
    if (this.offToken) this.offToken();
    if (this.unsubscribe) this.unsubscribe();
  }

  vars() {
    return { board: this.getAttribute('board') || 'SERVICE', window: this.getAttribute('window') || 'MONTH' };
  }

  show(standings) {
    this.rows.innerHTML = standings.map((s) => `<li>${escape(s.person?.name || '—')} <span class="muted">${escape(s.person?.team || '')}</span></li>`).join('')
      || '<li class="muted">Nobody yet this period.</li>';
  }

  async load() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = await subscribe('LeaderboardLive', this.vars(), (data) => {
      if (data && data.leaderboardChanged) this.show(data.leaderboardChanged.standings);
    });
    // Two operations: the board is the same for everyone (the gateway serves it from its
    // shared cache); only the rank is per person.
    const board = gql('Leaderboard', { ...this.vars(), first: Number(this.getAttribute('first') || 10) });
    const mine = gql('MyRank', this.vars());
    try {
      this.show((await board).leaderboard.standings);
      const r = (await mine).myRank;
      this.me.textContent = r.optedOut ? 'You opted out of leaderboards.' : r.rank ? `You are #${r.rank}.` : 'Help someone to join the board.';
    } catch (err) {
      this.me.textContent = err.message;
    }
  }
}
customElements.define('thrive-leaderboard', ThriveLeaderboard);
