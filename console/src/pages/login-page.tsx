import type { WhoAmI } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { ErrorNotice } from "../components/page";
import { api, setCsrfToken } from "../lib/api";

/** Email and password of an existing user; the session lives in an HttpOnly cookie. */
export function LoginPage(props: { onLoggedIn: (whoami: WhoAmI) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const answer = await api<{ csrfToken: string }>("POST", "/auth/login", {
        body: { email, password, session: "cookie" },
      });
      setCsrfToken(answer.csrfToken);
      props.onLoggedIn(await api<WhoAmI>("GET", "/auth/whoami"));
    } catch (caught) {
      setError(caught);
      setPassword("");
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form class="login-form" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">fieldgate console</h1>
        <label>
          Email
          <input
            type="email"
            name="email"
            autoComplete="username"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <ErrorNotice error={error} />
        <button type="submit" class="primary" disabled={busy}>
          Log in
        </button>
      </form>
    </main>
  );
}
