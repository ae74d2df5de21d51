import type { Group } from "@fieldgate/shared";
import { useCallback, useEffect, useState } from "preact/hooks";
import { api } from "./api";

/** The groups the session may read, in tree order, with a reload for after a change. */
export function useGroups(): { groups: Group[] | undefined; error: unknown; reload: () => Promise<void> } {
  const [groups, setGroups] = useState<Group[] | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const reload = useCallback(async () => {
    try {
      const answer = await api<{ items: Group[] }>("GET", "/groups");
      setGroups(answer.items);
      setError(undefined);
    } catch (caught) {
      setError(caught);
    }
  }, []);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { groups, error, reload };
}

/** The organization's root group's full name (the first name of any full name). */
export function rootNameOf(fullName: string): string {
  return fullName.split("/")[0] ?? fullName;
}

/** The time zones the browser knows (IANA names), with UTC first. */
export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = intl.supportedValuesOf?.("timeZone") ?? [];
  return ["UTC", ...zones.filter((zone) => zone !== "UTC")];
}
