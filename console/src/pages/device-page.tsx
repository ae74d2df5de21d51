import type { Device } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { DeleteDeviceDialog, MenuButton, ResetTokenDialogs } from "../components/device-actions";
import { DeviceConfigSection, DeviceLogs, useDeviceConfig } from "../components/device-config";
import { DeviceEditDialog } from "../components/device-edit";
import { DeviceFirmware } from "../components/device-firmware";
import {
  DeviceCertificates,
  DeviceHealthChecks,
  DeviceHistory,
  DeviceInformation,
} from "../components/device-sections";
import { DeviceTelemetry } from "../components/device-telemetry";
import { HealthBadge } from "../components/health-badge";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { ApiError, api } from "../lib/api";
import { useLive } from "../lib/live";
import { useSession } from "../lib/session";
import { useResource } from "../lib/use-resource";

type Open = "edit" | "reset" | "delete" | undefined;

/**
 * `/devices/:uuid`: everything about one device, re-read on its `device` and `job` live events
 * (or each poll tick). A device the session may not see answers 404 like an unknown one, and
 * the page says only "Device not found".
 */
export function DevicePage() {
  const { params } = useRoute();
  const uuid = (params.uuid ?? "").toLowerCase();
  const session = useSession();
  const location = useLocation();
  const [tick, setTick] = useState(0);
  const [open, setOpen] = useState<Open>(undefined);
  const refresh = () => setTick((t) => t + 1);
  useLive((event) => (event.kind === "device" || event.kind === "job") && event.uuid === uuid, refresh);

  const device = useResource(
    (signal) => api<Device>("GET", `/devices/${encodeURIComponent(uuid)}`, { signal }),
    [uuid, tick],
  );
  const config = useDeviceConfig(uuid, tick);
  const d = device.data;

  if (!d) {
    const error = device.error;
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) return <DeviceNotFound />;
    return (
      <>
        <PageHeader title="Device" />
        {error ? <ErrorNotice error={error} /> : <Loading />}
      </>
    );
  }
  if (device.error instanceof ApiError && device.error.status === 404) return <DeviceNotFound />;
  const writable = session.can("devices:write", d.group.fullName);

  return (
    <div class="device-page">
      <p class="breadcrumb">
        <a href="/">Devices</a> <span aria-hidden="true">›</span> {d.group.fullName}
      </p>
      <PageHeader title={d.name || d.uuid}>
        <HealthBadge health={d.health} online={d.online} lastSeen={d.lastSeen} />
        {writable && (
          <MenuButton
            label="Actions"
            items={[
              { label: "Edit", onSelect: () => setOpen("edit") },
              { label: "Reset token", onSelect: () => setOpen("reset") },
              { label: "Delete", onSelect: () => setOpen("delete"), danger: true },
            ]}
          />
        )}
      </PageHeader>
      <ErrorNotice error={device.error} />
      <nav class="section-nav" aria-label="Sections">
        <a href="#information">Information</a>
        <a href="#health">Health</a>
        <a href="#telemetry">Telemetry</a>
        <a href="#logs">Logs</a>
        <a href="#config">Configuration</a>
        <a href="#certificate">Certificate</a>
        <a href="#firmware">Firmware</a>
        <a href="#presence">Presence</a>
        <a href="#events">Events</a>
      </nav>
      <div class="device-grid">
        <DeviceInformation device={d} />
        <DeviceHealthChecks uuid={d.uuid} tick={tick} />
        <DeviceTelemetry uuid={d.uuid} tick={tick} />
        <DeviceLogs uuid={d.uuid} tick={tick} config={config} writable={writable} />
        <DeviceConfigSection uuid={d.uuid} config={config} writable={writable} />
        <DeviceCertificates device={d} tick={tick} />
        <DeviceFirmware device={d} tick={tick} />
        <DeviceHistory uuid={d.uuid} tick={tick} />
      </div>
      {open === "edit" && (
        <DeviceEditDialog
          device={d}
          onClose={() => setOpen(undefined)}
          onSaved={() => {
            setOpen(undefined);
            refresh();
          }}
        />
      )}
      {open === "reset" && <ResetTokenDialogs device={d} onClose={() => setOpen(undefined)} onDone={refresh} />}
      {open === "delete" && (
        <DeleteDeviceDialog device={d} onClose={() => setOpen(undefined)} onDeleted={() => location.route("/")} />
      )}
    </div>
  );
}

function DeviceNotFound() {
  return (
    <section class="not-found">
      <h1>Device not found</h1>
      <p>
        There is no device with this uuid that you may see. <a href="/">Back to the devices</a>
      </p>
    </section>
  );
}
