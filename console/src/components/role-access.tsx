import { AREAS, accessOf, ROLE_NAMES, ROLE_SUMMARY } from "../lib/roles";

/** One role on one group: its name, the group, and R or R/W for each area it reaches. */
export function RoleAccess(props: { role: string; group: string }) {
  return (
    <div class="role-access">
      <span class="role-name">{props.role}</span> on <span class="mono">{props.group}</span>
      <ul class="access-list" aria-label={`What ${props.role} allows`}>
        {AREAS.map(([area, label]) => {
          const access = accessOf(props.role, area);
          return access ? (
            <li key={area} class={access === "R/W" ? "rw" : "r"}>
              {label} <strong>{access}</strong>
            </li>
          ) : null;
        })}
      </ul>
    </div>
  );
}

/** The legend: every role against every area, R or R/W, and what the role is for. */
export function RoleTable() {
  return (
    <details class="panel role-table">
      <summary>What each role allows (R: read, R/W: read and change)</summary>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Role</th>
              {AREAS.map(([area, label]) => (
                <th scope="col" key={area}>
                  {label}
                </th>
              ))}
              <th scope="col">For</th>
            </tr>
          </thead>
          <tbody>
            {ROLE_NAMES.map((role) => (
              <tr key={role}>
                <th scope="row">{role}</th>
                {AREAS.map(([area]) => (
                  <td key={area}>{accessOf(role, area) || "—"}</td>
                ))}
                <td>{ROLE_SUMMARY[role]}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="hint">A role held on a group applies to that group and every group below it.</p>
    </details>
  );
}
