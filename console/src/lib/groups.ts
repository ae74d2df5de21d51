import type { Group } from "@fieldgate/shared";
import { useItems } from "./use-resource";

/** The groups the session may read, in tree order, with a reload for after a change. */
export function useGroups(): { groups: Group[] | undefined; error: unknown; reload: () => Promise<void> } {
  const { data: groups, error, reload } = useItems<Group>("/groups");
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
