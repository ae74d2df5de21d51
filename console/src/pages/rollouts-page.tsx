import { PageHeader } from "../components/page";

export function RolloutsPage() {
  return <PageHeader title="Rollouts" />;
}

export function RolloutPage() {
  return <PageHeader title="Rollout" />;
}
