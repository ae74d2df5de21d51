import { useState } from "preact/hooks";

/**
 * A file chosen with the file input or dropped on the zone around it. The input stays the
 * keyboard and screen-reader way in; the drop zone is an extra for the mouse.
 */
export function FileDrop(props: {
  label: string;
  accept: string;
  file: File | undefined;
  onFile: (file: File | undefined) => void;
  hint?: string;
}) {
  const [over, setOver] = useState(false);
  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: the drop zone only adds drag and drop to the labelled input inside
    <div
      class={over ? "file-drop over" : "file-drop"}
      data-testid="drop-zone"
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(event) => {
        event.preventDefault();
        setOver(false);
        const file = event.dataTransfer?.files[0];
        if (file) props.onFile(file);
      }}
    >
      <label>
        {props.label}
        <input
          type="file"
          accept={props.accept}
          onChange={(e) => props.onFile(e.currentTarget.files?.[0] ?? undefined)}
        />
      </label>
      <p class="hint">
        {props.file
          ? `Chosen: ${props.file.name} (${formatBytes(props.file.size)})`
          : (props.hint ?? "Or drop a file here.")}
      </p>
    </div>
  );
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
