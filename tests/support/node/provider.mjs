// A real OpenID Provider for the sign-in tests (the npm package oidc-provider).
//
//   PORT=4000 CLIENTS='[{"client_id":"gatehold","client_secret":"...","redirect_uris":["..."]}]' \
//   [JWKS='{"keys":[...private JWKs...]}'] ACCOUNTS='{"cora":{"email":"cora@acme.test","groups":["acme-staff"]}}' node provider.mjs
//
// The built-in development login page accepts any login name and password; the login
// name picks the account. Consent is granted automatically (first-party clients).
// An account's "omit" list names claims its ID token leaves out.
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const CLIENTS = JSON.parse(process.env.CLIENTS || '[]');
const ACCOUNTS = JSON.parse(process.env.ACCOUNTS || '{}');
// Signing keys that outlive a restart, as a real provider's do (default: new each start).
const JWKS = process.env.JWKS ? { jwks: JSON.parse(process.env.JWKS) } : {};
const SCOPE = 'openid email groups';
const CLAIMS = ['email', 'email_verified', 'groups'];

const oidc = new Provider(ISSUER, {
  ...JWKS,
  clients: CLIENTS.map((client) => ({
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    require_auth_time: true,
    ...client,
  })),
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  scopes: ['openid', 'email', 'groups'],
  conformIdTokenClaims: false,
  cookies: { keys: ['test-provider-cookie-key-not-a-secret'] },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPE);
    grant.addOIDCClaims(CLAIMS);
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const known = ACCOUNTS[id] || { email: `${id}@unknown.test`, groups: [] };
    return {
      accountId: id,
      async claims() {
        // "omit": claim names this account's ID token leaves out (e.g. email_verified).
        const { omit = [], ...claims } = known;
        const all = { sub: id, email_verified: true, ...claims };
        for (const name of omit) delete all[name];
        return all;
      },
    };
  },
});
oidc.listen(PORT, '127.0.0.1', () => console.log(`openid provider ready at ${ISSUER}`));
