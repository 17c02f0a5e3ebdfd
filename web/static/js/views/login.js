// The login form. Errors from the server's problem document are shown inline, per field when
// the problem names one.

import { ApiError, errorText } from '../api.js';
import { h, replace } from '../dom.js';

/**
 * Renders the login form into root. login(username, password) resolves when logged in and
 * rejects with an ApiError otherwise. message is shown above the form (e.g. "session expired").
 */
export function renderLogin(root, { login, message = '' }) {
  const userErr = h('p', { class: 'field-error', id: 'login-username-error', testid: 'login-username-error', hidden: true });
  const passErr = h('p', { class: 'field-error', id: 'login-password-error', testid: 'login-password-error', hidden: true });
  const username = h('input', {
    id: 'login-username',
    name: 'username',
    type: 'text',
    autocomplete: 'username',
    autocapitalize: 'none',
    spellcheck: 'false',
    required: true,
    testid: 'login-username',
    'aria-describedby': 'login-username-error',
  });
  const password = h('input', {
    id: 'login-password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    testid: 'login-password',
    'aria-describedby': 'login-password-error',
  });
  const error = h('div', { class: 'form-error', role: 'alert', testid: 'login-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit' }, 'Log in');
  const info = message ? h('p', { class: 'login-message', role: 'status', testid: 'login-message' }, message) : null;

  const showFieldError = (el, input, text) => {
    el.textContent = text;
    el.hidden = !text;
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };

  const clearErrors = () => {
    showFieldError(userErr, username, '');
    showFieldError(passErr, password, '');
    error.textContent = '';
    error.hidden = true;
  };

  let retryTimer = null;
  const form = h(
    'form',
    {
      class: 'login-form',
      testid: 'login-form',
      novalidate: true,
      onsubmit: async (ev) => {
        ev.preventDefault();
        clearErrors();
        const u = username.value.trim();
        const p = password.value;
        if (!u) showFieldError(userErr, username, 'Enter your user name.');
        if (!p) showFieldError(passErr, password, 'Enter your password.');
        if (!u || !p) {
          (u ? password : username).focus();
          return;
        }
        submit.disabled = true;
        submit.textContent = 'Logging in…';
        try {
          await login(u, p);
        } catch (err) {
          submit.textContent = 'Log in';
          submit.disabled = false;
          let general = errorText(err);
          if (err instanceof ApiError) {
            let placed = 0;
            for (const fe of err.errors) {
              if (fe.field === 'username') showFieldError(userErr, username, fe.reason);
              else if (fe.field === 'password') showFieldError(passErr, password, fe.reason);
              else continue;
              placed++;
            }
            general = err.detail || err.title;
            // The server's wording is for integrators; a clinician gets one plain sentence.
            if (err.status === 401) general = 'Wrong user name or password.';
            if (err.status === 429) {
              const wait = Number.isFinite(err.retryAfter) && err.retryAfter > 0 ? err.retryAfter : 0;
              general = (err.detail || 'Too many attempts.') + (wait ? ` Try again in ${wait} s.` : '');
              if (wait) {
                submit.disabled = true;
                clearTimeout(retryTimer);
                retryTimer = setTimeout(() => {
                  submit.disabled = false;
                }, wait * 1000);
              }
            }
            if (placed && !err.detail) general = '';
          }
          if (general) {
            error.textContent = general;
            error.hidden = false;
          }
          password.select();
          password.focus();
        }
      },
    },
    h('h1', { id: 'login-title', class: 'login-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Vigil'),
    h('p', { class: 'login-sub' }, 'Clinician dashboard'),
    info,
    h('div', { class: 'field' }, h('label', { for: 'login-username' }, 'User name'), username, userErr),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password, passErr),
    error,
    submit,
  );
  replace(root, form);
  username.focus();
}
