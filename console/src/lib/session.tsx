import type { WhoAmI } from "@fieldgate/shared";
import { createContext } from "preact";
import { useContext } from "preact/hooks";

/**
 * Who is logged in and what they may do. The console hides what a role does not allow; the API
 * refuses it anyway (docs/console.md, "Roles").
 */
export interface Session {
  whoami: WhoAmI;
  /**
   * True when a grant allows `permission` on the group named by `groupFullName` (a grant covers
   * its group and every group below), or anywhere when no group is given.
   */
  can(permission: string, groupFullName?: string): boolean;
}

export function sessionOf(whoami: WhoAmI): Session {
  return {
    whoami,
    can(permission, groupFullName) {
      return whoami.grants.some(
        (grant) =>
          grant.permissions.includes(permission) &&
          (groupFullName === undefined || covers(grant.group.fullName, groupFullName)),
      );
    },
  };
}

function covers(grantGroup: string, group: string): boolean {
  return group === grantGroup || group.startsWith(`${grantGroup}/`);
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a logged-in console");
  return session;
}
