import type { WhoAmI } from "@fieldgate/shared";
import { useEffect, useState } from "preact/hooks";
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { Loading } from "./components/page";
import { ApiError, api, setCsrfToken, whenSessionLost } from "./lib/api";
import { disconnectLive } from "./lib/live";
import { type Session, SessionContext, sessionOf } from "./lib/session";
import { BulkPage } from "./pages/bulk-page";
import { CredentialsPage } from "./pages/credentials-page";
import { DevicePage } from "./pages/device-page";
import { DeviceTypesPage } from "./pages/device-types-page";
import { DevicesPage } from "./pages/devices-page";
import { FirmwarePage } from "./pages/firmware-page";
import { GroupsPage } from "./pages/groups-page";
import { LoginPage } from "./pages/login-page";
import { RolloutPage, RolloutsPage } from "./pages/rollouts-page";
import { UsersPage } from "./pages/users-page";

/** The navigation: each entry shows only to a session that may read what it lists. */
const NAV: { href: string; label: string; permission: string }[] = [
  { href: "/", label: "Devices", permission: "devices:read" },
  { href: "/groups", label: "Groups", permission: "groups:read" },
  { href: "/device-types", label: "Device types", permission: "types:read" },
  { href: "/users", label: "Users", permission: "users:read" },
  { href: "/credentials", label: "API credentials", permission: "credentials:read" },
  { href: "/bulk", label: "Bulk operations", permission: "devices:read" },
  { href: "/firmware", label: "Firmware", permission: "firmware:read" },
  { href: "/rollouts", label: "Rollouts", permission: "firmware:read" },
];

export function App() {
  return (
    <LocationProvider>
      <Console />
    </LocationProvider>
  );
}

function Console() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const location = useLocation();

  const adopt = (whoami: WhoAmI | null) => {
    setCsrfToken(whoami?.csrfToken);
    if (!whoami) disconnectLive();
    setSession(whoami ? sessionOf(whoami) : null);
  };

  useEffect(() => {
    whenSessionLost(() => adopt(null));
    api<WhoAmI>("GET", "/auth/whoami")
      .then(adopt)
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 401) adopt(null);
        else adopt(null);
      });
  }, []);

  if (session === undefined) return <Loading />;
  if (session === null) return <LoginPage onLoggedIn={adopt} />;

  const logout = async () => {
    await api("POST", "/auth/logout").catch(() => undefined);
    adopt(null);
    location.route("/");
  };

  return (
    <SessionContext.Provider value={session}>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/">
          fieldgate
        </a>
        <span class="org" title="Organization">
          {session.whoami.organization}
        </span>
        <span class="who">{session.whoami.user?.email ?? session.whoami.id}</span>
        <button type="button" class="link-button" onClick={logout}>
          Log out
        </button>
      </header>
      <div class="layout">
        <nav class="sidenav" aria-label="Main">
          <ul>
            {NAV.filter((item) => session.can(item.permission)).map((item) => (
              <li key={item.href}>
                <a
                  href={item.href}
                  aria-current={isCurrent(location.path, item.href) ? "page" : undefined}
                  class={isCurrent(location.path, item.href) ? "current" : undefined}
                >
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          <Router>
            <Route path="/" component={DevicesPage} />
            <Route path="/devices/:uuid" component={DevicePage} />
            <Route path="/groups" component={GroupsPage} />
            <Route path="/device-types" component={DeviceTypesPage} />
            <Route path="/users" component={UsersPage} />
            <Route path="/credentials" component={CredentialsPage} />
            <Route path="/bulk" component={BulkPage} />
            <Route path="/firmware" component={FirmwarePage} />
            <Route path="/rollouts" component={RolloutsPage} />
            <Route path="/rollouts/:id" component={RolloutPage} />
            <Route default component={NotFound} />
          </Router>
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function isCurrent(path: string, href: string): boolean {
  if (href === "/") return path === "/" || path.startsWith("/devices/");
  return path === href || path.startsWith(`${href}/`);
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        This page does not exist. <a href="/">Go to the devices</a>.
      </p>
    </section>
  );
}
