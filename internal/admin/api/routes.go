package api

import "net/http"

// route is one operation: the handler and everything the OpenAPI document
// says about it.
type route struct {
	method  string
	path    string // below the prefix, with {params}
	tag     string // Mailu's namespace
	op      string // operationId (Mailu's @doc name)
	summary string
	body    *model // request body model, nil for none
	resps   []resp
	h       func(*call)
}

type resp struct {
	code  int
	desc  string
	model *model // nil with list: a list of strings
	list  bool
}

func ok(m *model) resp     { return resp{http.StatusOK, "Success", m, false} }
func okList(m *model) resp { return resp{http.StatusOK, "Success", m, true} }
func bad() resp {
	return resp{http.StatusBadRequest, "Input validation exception", responseModel, false}
}
func missing(what string) resp {
	return resp{http.StatusNotFound, what + " not found", responseModel, false}
}
func clash(what string) resp { return resp{http.StatusConflict, what, responseModel, false} }

// table is Mailu's API, namespace by namespace (api/v1/*.py), plus the
// /token/user/{email} spelling Mailu documents but, through a missing
// slash, serves as /tokenuser/{email}: both are answered.
func (a *API) table() []route {
	r := []route{
		// domain
		{"GET", "/domain", "domain", "list_domain", "List all domains", nil, []resp{okList(domainGetModel)}, a.listDomains},
		{"POST", "/domain", "domain", "create_domain", "Create a new domain", domainModel,
			[]resp{ok(responseModel), bad(), clash("Duplicate domain/alternative name")}, a.createDomain},
		{"GET", "/domain/{domain}", "domain", "find_domain", "Look up the specified domain", nil,
			[]resp{ok(domainGetModel), bad(), missing("Domain")}, a.getDomain},
		{"PATCH", "/domain/{domain}", "domain", "update_domain", "Update the specified domain", domainUpdateModel,
			[]resp{ok(responseModel), bad(), missing("Domain"), clash("Duplicate domain/alternative name")}, a.updateDomain},
		{"DELETE", "/domain/{domain}", "domain", "delete_domain", "Delete the specified domain", nil,
			[]resp{ok(responseModel), bad(), missing("Domain")}, a.deleteDomain},
		{"POST", "/domain/{domain}/dkim", "domain", "generate_dkim", "Generate new DKIM/DMARC keys for the specified domain", nil,
			[]resp{ok(responseModel), bad(), missing("Domain")}, a.generateDKIM},
		{"GET", "/domain/{domain}/manager", "domain", "list_managers", "List all managers of the specified domain", nil,
			[]resp{ok(managerModel), bad(), missing("Domain")}, a.listManagers},
		{"POST", "/domain/{domain}/manager", "domain", "create_manager", "Create a new domain manager for the specified domain", managerCreateModel,
			[]resp{ok(responseModel), bad(), missing("User or domain"), clash("Duplicate domain manager")}, a.createManager},
		{"GET", "/domain/{domain}/manager/{email}", "domain", "find_manager", "Check if the specified user is a manager of the specified domain", nil,
			[]resp{ok(responseModel), bad(), missing("Manager")}, a.findManager},
		{"DELETE", "/domain/{domain}/manager/{email}", "domain", "delete_manager", "Delete the specified manager of the specified domain", nil,
			[]resp{ok(responseModel), bad(), missing("Manager")}, a.deleteManager},
		{"GET", "/domain/{domain}/users", "domain", "list_user_domain", "List all the users from the specified domain", nil,
			[]resp{okList(userGetModel), bad(), missing("Domain")}, a.listDomainUsers},

		// alternative
		{"GET", "/alternative", "alternative", "list_alternative", "List all alternatives", nil, []resp{okList(alternativeModel)}, a.listAlternatives},
		{"POST", "/alternative", "alternative", "create_alternative", "Create a new alternative (for domain)", alternativeModel,
			[]resp{ok(responseModel), bad(), missing("Domain"), clash("Duplicate alternative domain name")}, a.createAlternative},
		{"GET", "/alternative/{alt}", "alternative", "find_alternative", "Look up the specified alternative (of domain)", nil,
			[]resp{ok(alternativeModel), bad(), missing("Alternative")}, a.getAlternative},
		{"DELETE", "/alternative/{alt}", "alternative", "delete_alternative", "Delete the specified alternative (for domain)", nil,
			[]resp{ok(responseModel), bad(), missing("Alternative")}, a.deleteAlternative},

		// user
		{"GET", "/user", "user", "list_users", "List users", nil, []resp{okList(userGetModel)}, a.listUsers},
		{"POST", "/user", "user", "create_user", "Create user", userCreateModel,
			[]resp{ok(responseModel), bad(), missing("Domain"), clash("Duplicate user or domain limit reached")}, a.createUser},
		{"GET", "/user/{email}", "user", "find_user", "Find user", nil,
			[]resp{ok(userGetModel), bad(), missing("User")}, a.getUser},
		{"PATCH", "/user/{email}", "user", "update_user", "Update user", userUpdateModel,
			[]resp{ok(responseModel), bad(), missing("User"), clash("Domain limit reached")}, a.updateUser},
		{"DELETE", "/user/{email}", "user", "delete_user", "Delete user", nil,
			[]resp{ok(responseModel), bad(), missing("User")}, a.deleteUser},

		// alias
		{"GET", "/alias", "alias", "list_alias", "List all aliases", nil, []resp{okList(aliasModel)}, a.listAliases},
		{"POST", "/alias", "alias", "create_alias", "Create a new alias", aliasModel,
			[]resp{ok(responseModel), bad(), missing("Domain or destination"), clash("Duplicate alias or domain limit reached")}, a.createAlias},
		{"GET", "/alias/{alias}", "alias", "find_alias", "Look up the specified alias", nil,
			[]resp{ok(aliasModel), bad(), missing("Alias")}, a.getAlias},
		{"PATCH", "/alias/{alias}", "alias", "update_alias", "Update the specified alias", aliasUpdateModel,
			[]resp{ok(responseModel), bad(), missing("Alias or destination")}, a.updateAlias},
		{"DELETE", "/alias/{alias}", "alias", "delete_alias", "Delete the specified alias", nil,
			[]resp{ok(responseModel), bad(), missing("Alias")}, a.deleteAlias},
		{"GET", "/alias/destination/{domain}", "alias", "find_alias_filter_domain", "Look up the aliases of the specified domain", nil,
			[]resp{okList(aliasModel), bad(), missing("Domain")}, a.domainAliases},
		{"GET", "/alias/domains/available", "alias", "available_domains", "Return all available domains (Mailu master)", nil,
			[]resp{{http.StatusOK, "Success", nil, true}}, a.availableDomains},

		// relay
		{"GET", "/relay", "relay", "list_relays", "List relays", nil, []resp{okList(relayModel)}, a.listRelays},
		{"POST", "/relay", "relay", "create_relay", "Create relay", relayModel,
			[]resp{ok(responseModel), bad(), clash("Duplicate relay")}, a.createRelay},
		{"GET", "/relay/{name}", "relay", "find_relay", "Find relay", nil,
			[]resp{ok(relayModel), bad(), missing("Relay")}, a.getRelay},
		{"PATCH", "/relay/{name}", "relay", "update_relay", "Update relay", relayUpdateModel,
			[]resp{ok(responseModel), bad(), missing("Relay")}, a.updateRelay},
		{"DELETE", "/relay/{name}", "relay", "delete_relay", "Delete relay", nil,
			[]resp{ok(responseModel), bad(), missing("Relay")}, a.deleteRelay},

		// token
		{"GET", "/token", "token", "list_tokens", "List all tokens", nil, []resp{okList(tokenGetModel)}, a.listTokens},
		{"POST", "/token", "token", "create_token", "Create a new token", tokenPostModel,
			[]resp{ok(tokenPostResponseModel), bad(), missing("User")}, a.createToken},
		{"GET", "/token/{token_id}", "token", "find_token", "Find the specified token", nil,
			[]resp{ok(tokenGetModel), missing("Token")}, a.getToken},
		{"PATCH", "/token/{token_id}", "token", "update_token", "Update the specified token", tokenPost2Model,
			[]resp{ok(responseModel), bad(), missing("Token")}, a.updateToken},
		{"DELETE", "/token/{token_id}", "token", "delete_token", "Delete the specified token", nil,
			[]resp{ok(responseModel), missing("Token")}, a.deleteToken},
	}
	for _, p := range []string{"/tokenuser/{email}", "/token/user/{email}"} {
		op := "_of_user"
		if p == "/token/user/{email}" {
			op = "_of_user_documented_path"
		}
		r = append(r,
			route{"GET", p, "token", "find_tokens" + op, "Look up all the tokens of the specified user", nil,
				[]resp{okList(tokenGetModel), bad(), missing("User")}, a.userTokens},
			route{"POST", p, "token", "create_token" + op, "Create a new token for the specified user", tokenPost2Model,
				[]resp{ok(tokenPostResponseModel), bad(), missing("User")}, a.createUserToken})
	}
	return r
}
