import { describe, expect, it } from "vitest";
import { api, person, repoWithPeople } from "./api-support";

describe("smoke", () => {
  it("me, repos, roles", async () => {
    const me = await person();
    const res = await api("GET", "/api/me", { token: me.token });
    expect(res.status, await res.clone().text()).toBe(200);
    const created = await api("POST", "/api/repos", { token: me.token, body: { owner: `o-${me.login}`, name: "r" } });
    expect(created.status, await created.clone().text()).toBe(201);
    const { repoId, reader } = await repoWithPeople();
    const roles = await api("GET", `/api/repos/${repoId}/roles`, { token: reader.token });
    expect(roles.status, await roles.clone().text()).toBe(200);
    const doc = await api("GET", "/api/openapi.json");
    expect(doc.status, (await doc.clone().text()).slice(0, 500)).toBe(200);
  });
});
