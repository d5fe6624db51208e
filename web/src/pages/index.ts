import type { Page } from "../app";
import { activity } from "./activity";
import { agent } from "./agent";
import { alerts, webhooks } from "./alerts";
import { bestTime } from "./besttime";
import { builderPage } from "./builder";
import { calls } from "./calls";
import { coaching } from "./coaching";
import { dashboardsPage } from "./dashboards";
import { imports } from "./imports";
import { overview } from "./overview";
import { pipeline } from "./pipeline";
import { schedules } from "./schedules";
import { staffing } from "./staffing";
import { team } from "./team";
import { tickets } from "./tickets";

/** In the navigation's order; the first a role may see is its home. */
export const PAGES: Page[] = [overview, team, agent, pipeline, bestTime, staffing, tickets, coaching, activity, calls, imports, alerts, schedules, webhooks, dashboardsPage, builderPage];
