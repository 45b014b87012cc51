// Passkeys (WebAuthn) for Gatehold's own pages: no inline script, no dependencies.
// A section with data-passkey-ceremony="login|verify|enrol|account" holds a button
// (data-passkey-start), a status line (data-passkey-status) and, to register, a name
// field (data-passkey-name). The server sends options as JSON and answers with
// {"redirect": path} or a problem {"title": message}.
"use strict";

(function () {
  const ROUTES = {
    login: { path: "/.gatehold/login/passkey", create: false },
    verify: { path: "/.gatehold/login/verify/passkey", create: false },
    enrol: { path: "/.gatehold/login/enrol/passkey", create: true },
    account: { path: "/.gatehold/account/passkeys", create: true },
  };

  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function toText(buffer) {
    let binary = "";
    new Uint8Array(buffer).forEach((b) => { binary += String.fromCharCode(b); });
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    json.challenge = toBytes(json.challenge);
    json.user.id = toBytes(json.user.id);
    json.excludeCredentials = (json.excludeCredentials || []).map((c) => ({ ...c, id: toBytes(c.id) }));
    return json;
  }

  function requestOptions(json) {
    json.challenge = toBytes(json.challenge);
    json.allowCredentials = (json.allowCredentials || []).map((c) => ({ ...c, id: toBytes(c.id) }));
    return json;
  }

  function credentialJson(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) response.userHandle = toText(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
    };
  }

  async function post(path, body, csrf) {
    const headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const answer = await fetch(path, {
      method: "POST", headers: headers, body: JSON.stringify(body), credentials: "same-origin",
    });
    const data = await answer.json().catch(() => ({}));
    return { ok: answer.ok, data: data };
  }

  async function run(section) {
    const route = ROUTES[section.dataset.passkeyCeremony];
    const status = section.querySelector("[data-passkey-status]");
    const nameField = section.querySelector("[data-passkey-name]");
    const say = (message) => { status.textContent = message; status.hidden = false; };
    status.hidden = true;
    const csrf = section.dataset.csrf;
    const options = await post(route.path + "/options", {}, csrf);
    if (!options.ok) {
      say(options.data.title || "Passkeys are not available right now.");
      if (options.data.redirect) window.location.assign(options.data.redirect);
      return;
    }
    let credential;
    try {
      credential = route.create
        ? await navigator.credentials.create({ publicKey: creationOptions(options.data) })
        : await navigator.credentials.get({ publicKey: requestOptions(options.data) });
    } catch (error) {
      say("No passkey was used. Try again, or use another way.");
      return;
    }
    const body = { credential: credentialJson(credential) };
    if (nameField) body.name = nameField.value;
    if (section.dataset.rd) body.rd = section.dataset.rd;
    const done = await post(route.path, body, csrf);
    if (done.data.redirect) {
      window.location.assign(done.data.redirect);
      return;
    }
    say(done.data.title || "That passkey was not accepted.");
  }

  function start() {
    document.querySelectorAll("[data-passkey-ceremony]").forEach((section) => {
      const button = section.querySelector("[data-passkey-start]");
      if (!button) return;
      if (!window.PublicKeyCredential) {
        button.disabled = true;
        const status = section.querySelector("[data-passkey-status]");
        status.textContent = "This browser cannot use passkeys.";
        status.hidden = false;
        return;
      }
      button.addEventListener("click", () => {
        button.disabled = true;
        run(section).finally(() => { button.disabled = false; });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
